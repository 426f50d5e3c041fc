"""Model sizes (``model.size``): each preset's published ("paper") size for GPUs and a CPU size.

A preset's mapping (:mod:`.presets`) is the part every size shares. ``paper`` adds what the
published configuration needs on top (wide nets, many critic steps); ``cpu`` shrinks what makes a
training step slow on a laptop CPU (widths, blocks, critic steps) so that the model learns within
minutes. ``auto`` (the default) becomes ``cpu`` when the run trains on the CPU or Apple's ``mps``
and ``paper`` on CUDA; the resolved size is printed and recorded in the run's config.yaml.

Keys the user sets (a config file or ``--set``) always win over a size: ``--set model.g.width=128``
keeps width 128 at either size. A size is applied once: a config whose ``model.size`` is already
``cpu`` or ``paper`` (a run's saved config.yaml) is not changed again.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .presets import PRESETS, preset_config
from .schema import Config, set_key

SIZE_NAMES = ("auto", "cpu", "paper")

_W32 = {"model": {"g": {"width": 32}, "d": {"width": 32}}}  # DCGAN nets at half width: ~4x fewer FLOPs
# ResNet G/D: width 32, batch 32 and one D step with SNGAN's own one-step Adam setting (Miyato et al.
# 2018, Table 1, setting C: 2e-4, betas 0.5 / 0.999); a step costs ~0.34 CPU-s against ~3 at width 64
_SN_CPU = {**_W32, "train": {"n_critic": 1, "batch_size": 32}, "optim": {"betas": [0.5, 0.999]}}
_MLP_CPU = {"train": {"ema": 0.999}}  # the MLP GANs: an EMA of G (see SIZES)
# WGAN (weight clipping, batch-norm critic): one critic step at four times the paper's RMSprop rate, and
# weights clipped to 0.02 instead of 0.01; at 10 CPU-minutes FID 58.7 and 62.0 in two runs at 2e-4 against
# 73.9 at 1e-4, and 51.3 to 59.6 in three seeds with the wider clip against 62.0 / 69.3 (BENCHMARKS section 18)
_WGAN_CPU = {**_W32, "loss": {"clip": 0.02}, "train": {"n_critic": 1}, "optim": {"lr_g": 2e-4, "lr_d": 2e-4}}
# WGAN-GP / -LP: a layer-normed critic (the WGAN-GP paper's advice for a penalised critic), one critic step
# with Adam(0.5, 0.9) at 2e-4 for G and 4e-4 for D, batch 32; at 10 CPU-minutes WGAN-GP went from FID 82
# to 60 with layer norm and to 58 with the rest (BENCHMARKS section 18)
_WGAN_PENALTY_CPU = {"model": {"g": {"width": 32}, "d": {"width": 32, "norm": "ln"}},
                     "train": {"n_critic": 1, "batch_size": 32},
                     "optim": {"lr_g": 2e-4, "lr_d": 4e-4, "betas": [0.5, 0.9]}}
# Adam at 8e-4 for G and D with betas 0.5 / 0.999: four times SNGAN's one-step rate, for the class-conditional
# ResNets (projection, SAGAN, BigGAN), which at SNGAN's rate are far from their goal after minutes of training
_LARGE_STEPS = {"lr_g": 8e-4, "lr_d": 8e-4, "betas": [0.5, 0.999]}

# preset -> {size: mapping}. A size missing from a preset's entry leaves the preset as it is (the
# shared mapping already is that size: the sequence GANs are cheap everywhere).
SIZES: dict[str, dict[str, dict]] = {
    "dcgan": {"cpu": _W32},
    "lsgan": {"cpu": _W32},
    "hinge": {"cpu": _W32},
    "pacgan": {"cpu": _W32},
    "cgan": {"cpu": _W32},
    # ACGAN's class term at half weight: at minutes of training the full weight (the paper's) pushes
    # G towards easily classified samples of few kinds (BENCHMARKS section 18: FID 23.7 -> 19.1)
    "acgan": {"cpu": {**_W32, "loss": {"terms": {"aux": 0.5}}}},
    # The MLP GANs are cheap at any size; at minutes of training they collapse to few kinds of samples,
    # and an EMA of G smooths that out (BENCHMARKS section 18, 10 CPU-minutes: vanilla FID 73.1 -> 50.2,
    # vanilla-minimax 70.4 -> 50.3)
    "vanilla": {"cpu": _MLP_CPU},
    "vanilla-minimax": {"cpu": _MLP_CPU},
    "projection-dcgan": {"cpu": _W32},
    "wgan": {"cpu": _WGAN_CPU},
    "wgan-gp": {"cpu": _WGAN_PENALTY_CPU},
    "wgan-lp": {"cpu": _WGAN_PENALTY_CPU},
    "sngan": {"cpu": _SN_CPU, "paper": {"model": {"g": {"width": 256}, "d": {"width": 128}}}},
    # projection: the larger steps and an EMA of G; at 10 CPU-minutes FID 27.8 / 14.7 / 11.7 in three seeds at
    # 8e-4 against 34.6 at 2e-4, and 20.3 / 10.5 / 7.9 / 9.8 in four seeds with the EMA (BENCHMARKS section 18)
    "projection": {"cpu": {**_SN_CPU, "optim": _LARGE_STEPS, "train": {**_SN_CPU["train"], "ema": 0.999}},
                   "paper": {"model": {"g": {"width": 256}, "d": {"width": 128}}}},
    # BigGAN at width 32, batch 32 and one D step, with the larger steps and G without spectral norm (D keeps
    # it; the preset's EMA of G stays). With G's spectral norm the larger steps diverge in some seeds (seed 1:
    # FID 57.5 at 5 CPU-minutes, 100.2 at 10); without it, at 10 CPU-minutes FID 9.0 / 17.4 / 17.7 in seeds
    # 0 to 2 against 94.2 with SAGAN's TTUR rates (1e-4 / 4e-4, G's spectral norm kept; BENCHMARKS section 18)
    "biggan": {"cpu": {"model": {"g": {"width": 32, "sn": False}, "d": {"width": 32}},
                       "train": {"n_critic": 1, "batch_size": 32}, "optim": _LARGE_STEPS},
               "paper": {"model": {"g": {"width": 256}, "d": {"width": 256}}}},
    # SAGAN (its nets are CPU-sized already) at batch 32 with what BigGAN's CPU size has: the larger steps, G
    # without spectral norm, an EMA of G, and BigGAN's orthogonal initialisation instead of Xavier's. With G's
    # spectral norm the larger steps cost G its variety (recall 0.000, FID 131.7); without it, at 10
    # CPU-minutes FID 17.7 / 36.2 in seeds 0 / 1 with Xavier's init, and 14.3 / 15.1 / 10.2 / 10.4 in seeds 0
    # to 3 with the orthogonal one, against 97.0 and 71.6 at SAGAN's TTUR rates (BENCHMARKS section 18)
    "sagan": {"cpu": {"model": {"init": "orthogonal", "g": {"sn": False}}, "train": {"batch_size": 32, "ema": 0.999},
                      "optim": _LARGE_STEPS},
              "paper": {"model": {"g": {"width": 256}, "d": {"width": 256}}, "train": {"batch_size": 256}}},
    # StyleGAN2 at the setting StyleGAN2-ADA trains CIFAR-10 with (no path-length term, no style mixing),
    # batch 16, and channels in multiples of 16 (64 / 32 / 16 at 7 / 14 / 28 px, which oneDNN runs faster).
    # Adam at 1e-2 for G and D instead of the paper's 2e-3: with the equalised learning rate a stored weight
    # is N(0, 1), so a step moves it by about lr of its scale; 1e-2 is the 1 % per step DCGAN's 2e-4 on
    # N(0, 0.02) weights makes, which a run of minutes needs. At 10 CPU-minutes FID 18 to 32 in three seeds
    # against 56 to 62 at 2e-3 (BENCHMARKS section 18). The paper size keeps both regularisers and 2e-3
    "stylegan2": {"cpu": {"model": {"g": {"channel_base": 448, "mixing_prob": 0.0}, "d": {"channel_base": 448}},
                          "loss": {"terms": {"pl": 0.0}}, "train": {"batch_size": 16},
                          "optim": {"lr_g": 1e-2, "lr_d": 1e-2}},
                  "paper": {"model": {"g": {"w_dim": 512, "map_depth": 8, "channel_base": 32768, "channel_max": 512},
                                      "d": {"channel_base": 32768, "channel_max": 512}}}},
    "pix2pix": {"cpu": _W32},
    "deblur": {"cpu": _W32},
    "cyclegan": {"cpu": {"model": {"g": {"width": 32, "n_blocks": 3}, "d": {"width": 32}}}},
    "srgan": {"cpu": {"model": {"g": {"width": 32}, "d": {"width": 32}}},
              "paper": {"model": {"g": {"n_blocks": 16}}}},
    "stargan": {"paper": {"model": {"g": {"width": 64, "n_blocks": 6}, "d": {"width": 64}}}},
    "sgan": {"cpu": {"model": {"g": {"width": 32}}}},  # its MLP D costs little at any size
}


def _flatten(d: dict, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out += _flatten(v, prefix + (k,))
        else:
            out.append((prefix + (k,), v))
    return out


def explicit_keys(file_d: dict, overrides_paths: list[list[str]]) -> set[tuple]:
    """The dotted keys a config file and ``--set`` overrides name (what a size must not change)."""
    return {k for k, _ in _flatten(file_d)} | {tuple(p) for p in overrides_paths}


def _covered(key: tuple, explicit: set[tuple]) -> bool:
    """True when the user set ``key``, a section holding it, or a key inside it."""
    return any(key[:len(e)] == e or e[:len(key)] == key for e in explicit)


def _changed_keys(cfg: Config) -> set[tuple]:
    if cfg.preset not in PRESETS:
        return set()
    base = dict(_flatten(preset_config(cfg.preset).to_dict()))
    return {k for k, v in _flatten(cfg.to_dict()) if k not in base or base[k] != v}


def size_overlay(preset: str, size: str) -> dict:
    """The mapping ``size`` adds to ``preset`` ({} when the preset's shared mapping is that size)."""
    return SIZES.get(preset, {}).get(size, {})


def apply_size(cfg: Config, size: str, explicit: set[tuple] | None = None) -> None:
    """Resolve ``model.size`` to ``size`` ("cpu" or "paper"): the preset's overlay for it goes in,
    except the keys in ``explicit`` (or recorded by :func:`ganforge.config.resolve`)."""
    if size not in ("cpu", "paper"):
        raise ConfigError(f"model.size: expected cpu or paper here, got '{size}'")
    if explicit is None:
        explicit = getattr(cfg, "_explicit", None)
    if explicit is None:  # a Config built in Python: whatever differs from the preset was chosen by hand
        explicit = _changed_keys(cfg)
    own_nets = cfg.preset not in PRESETS or PRESETS[cfg.preset][1].get("model", {}).get("arch", "dcgan") == cfg.model.arch
    for key, value in _flatten(size_overlay(cfg.preset, size)):
        if key[:2] in (("model", "g"), ("model", "d")) and not own_nets:
            continue  # the preset's net sizes are arguments of its own family, not of the one chosen instead
        if not _covered(key, explicit):
            set_key(cfg, list(key), value)
    cfg.model.size = size


def size_for_device(device_type: str) -> str:
    """What ``auto`` becomes on a device: the published sizes need a CUDA GPU."""
    return "paper" if device_type == "cuda" else "cpu"


def settle_size(cfg: Config, device_type: str) -> bool:
    """Resolve ``model.size=auto`` for the device the run trains on; True when it changed the config."""
    if cfg.model.size != "auto":
        return False
    apply_size(cfg, size_for_device(device_type))
    return True


def describe_sizes(preset: str) -> str:
    """One line: what the CPU and paper sizes of ``preset`` change (for ``ganforge presets``)."""
    parts = []
    for size in ("cpu", "paper"):
        pairs = _flatten(size_overlay(preset, size))
        parts.append(f"{size}: " + (", ".join(f"{'.'.join(k)}={v}" for k, v in pairs) or "as the preset"))
    return "; ".join(parts)
