"""Value checks that need no registry: ranges, sizes, and combinations of plain values.

The helpers :func:`choice` and :func:`positive` are shared with the subsystems that check their
own sections of the config against their registries (:mod:`ganforge.validation`).
"""

from __future__ import annotations

import math

from ..errors import ConfigError
from ..registry import did_you_mean
from .schema import Config, image_hw
from .sizes import SIZE_NAMES

AMP_MODES = ("auto", "off", "bf16", "fp16")
SWITCHES = ("auto", "on", "off")
SCHEDULES = ("constant", "linear", "cosine")
LATENTS = ("normal", "uniform")
DEVICES = ("auto", "cpu", "cuda", "mps")
CACHE_MODES = ("auto", "on", "off")


def choice(key: str, value: str, choices) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices`` (naming the closest one)."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{key}: unknown value '{value}'{did_you_mean(value, choices)}; "
                          f"choose from: {', '.join(choices)}")


def positive(key: str, value, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def weights(key: str, mapping: dict) -> None:
    """A ``name -> weight`` mapping (penalties, loss terms): finite numbers >= 0."""
    for name, w in mapping.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ConfigError(f"{key}.{name}: weight must be a number >= 0, got {w!r}")


def check_values(cfg: Config) -> Config:
    """Check every plain value's type-independent range; raise ConfigError on the first problem."""
    d = cfg.data
    positive("data.image_size", min(image_hw(d.image_size)), allow_zero=True)
    choice("data.cache", d.cache, CACHE_MODES)
    positive("data.workers", d.workers, allow_zero=True)
    if d.channels not in (0, 1, 3):
        raise ConfigError(f"data.channels: must be 0 (dataset's own), 1 or 3, got {d.channels}")
    positive("data.limit", d.limit, allow_zero=True)
    for c in d.classes:  # the dataset's class count is checked by the dataset registry
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise ConfigError(f"data.classes: class indices must be integers >= 0, got {c!r}")
    if len(set(d.classes)) != len(d.classes):
        raise ConfigError(f"data.classes: a class is given twice in {d.classes}")
    positive("data.labels_per_class", d.labels_per_class)
    positive("data.length", d.length, allow_zero=True)
    positive("data.features", d.features)
    positive("data.stride", d.stride)
    if not 0 <= d.min_length <= max(d.length, 1):
        raise ConfigError(f"data.min_length: must be in [0, data.length={d.length}], got {d.min_length}")

    m = cfg.model
    choice("model.latent", m.latent, LATENTS)
    choice("model.size", m.size, SIZE_NAMES)
    positive("model.z_dim", m.z_dim, allow_zero=True)  # image-to-image nets may take no z (checked by the task)
    positive("model.init_gain", m.init_gain)

    lc = cfg.loss
    weights("loss.penalties", lc.penalties)
    weights("loss.terms", lc.terms)
    positive("loss.penalty_every", lc.penalty_every)
    positive("loss.clip", lc.clip, allow_zero=True)
    if not 0 <= lc.smooth < 1:
        raise ConfigError(f"loss.smooth: must be in [0, 1), got {lc.smooth}")
    positive("loss.pool", lc.pool, allow_zero=True)
    positive("loss.pl_every", lc.pl_every)
    positive("loss.adv_weight", lc.adv_weight, allow_zero=True)

    a = cfg.augment
    if not (0 <= a.p <= 1 or a.p == -1):
        raise ConfigError(f"augment.p: must be in [0, 1] (or -1 for the default), got {a.p}")
    if not 0 <= a.ada_target < 1:
        raise ConfigError(f"augment.ada_target: must be in [0, 1), got {a.ada_target}")
    positive("augment.ada_interval", a.ada_interval)
    positive("augment.ada_kimg", a.ada_kimg)
    positive("augment.noise", a.noise, allow_zero=True)
    positive("augment.noise_steps", a.noise_steps, allow_zero=True)

    o = cfg.optim
    positive("optim.lr_g", o.lr_g)
    positive("optim.lr_d", o.lr_d)
    choice("optim.schedule", o.schedule, SCHEDULES)
    if not 0 <= o.decay_start < 1:
        raise ConfigError(f"optim.decay_start: must be in [0, 1), got {o.decay_start}")
    if len(o.betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                                    for b in o.betas):
        raise ConfigError(f"optim.betas: expected two numbers in [0, 1), got {o.betas!r}")

    t = cfg.train
    positive("train.steps", t.steps)
    positive("train.batch_size", t.batch_size)
    positive("train.n_critic", t.n_critic)
    if not 0.0 <= t.ema < 1.0:
        raise ConfigError(f"train.ema: decay must be in [0, 1), got {t.ema}")
    for k in ("sample_every", "ckpt_every", "threads"):
        positive(f"train.{k}", getattr(t, k), allow_zero=True)
    positive("train.log_every", t.log_every)
    positive("train.keep_ckpts", t.keep_ckpts)
    positive("train.grid_size", t.grid_size)
    positive("train.max_minutes", t.max_minutes, allow_zero=True)
    positive("train.nan_retries", t.nan_retries, allow_zero=True)
    if not 0 < t.nan_lr_scale <= 1:
        raise ConfigError(f"train.nan_lr_scale: must be in (0, 1], got {t.nan_lr_scale}")
    if not (t.device in DEVICES or t.device.startswith("cuda:")):
        raise ConfigError(f"train.device: expected auto, cpu, cuda, cuda:N or mps, got '{t.device}'")
    choice("train.amp", t.amp, AMP_MODES)
    choice("train.channels_last", t.channels_last, SWITCHES)
    choice("train.init_what", t.init_what, ("g", "gd"))
    positive("train.freeze_d", t.freeze_d, allow_zero=True)
    if t.amp == "fp16" and any(float(w) > 0 for w in lc.penalties.values()):
        raise ConfigError("train.amp=fp16 cannot be combined with loss.penalties: their input gradients are not "
                          "loss-scaled and can underflow in fp16; use train.amp=bf16")

    e = cfg.eval
    positive("eval.every", e.every, allow_zero=True)
    if e.every and e.n < 2:
        raise ConfigError(f"eval.n: must be >= 2, got {e.n}")
    return cfg
