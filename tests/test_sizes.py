"""model.size: every preset's CPU and published sizes, auto resolution, and user keys winning."""

import pytest
import torch
import yaml
from torch.nn.utils import parametrize

from ganforge.config import PRESETS, SIZES, ConfigError, apply_size, resolve, settle_size
from ganforge.nets import build_nets, count_params
from ganforge.tasks import task_of
from ganforge.validation import validate


def test_auto_stays_unresolved_until_the_device_is_known():
    cfg = resolve("dcgan")
    assert cfg.model.size == "auto" and cfg.model.g == {}
    assert settle_size(cfg, "cpu") is True
    assert cfg.model.size == "cpu" and cfg.model.g == {"width": 32} and cfg.model.d == {"width": 32}
    assert settle_size(cfg, "cpu") is False  # applied once


def test_auto_on_cuda_is_the_paper_size():
    cfg = resolve("sngan")
    settle_size(cfg, "cuda")
    assert cfg.model.size == "paper" and cfg.model.g == {"width": 256} and cfg.train.n_critic == 5
    cpu = resolve("sngan")
    settle_size(cpu, "mps")  # Apple GPUs get the CPU size
    assert cpu.model.size == "cpu" and cpu.model.g == {"width": 32} and cpu.train.n_critic == 1
    assert cpu.train.batch_size == 32 and cpu.optim.betas == [0.5, 0.999]


def test_a_known_device_settles_the_size_in_resolve():
    assert resolve("wgan", overrides=["train.device=cpu"]).train.n_critic == 1
    assert resolve("wgan", overrides=["train.device=cuda:1"]).train.n_critic == 5
    assert resolve("wgan", overrides=["train.device=cuda", "model.size=cpu"]).train.n_critic == 1


def test_the_clipped_critic_takes_one_step_at_four_times_the_rate_and_a_wider_clip_at_the_cpu_size():
    for device, want in (("cpu", (1, 2e-4, 2e-4, "rmsprop", 0.02)), ("cuda", (5, 5e-5, 5e-5, "rmsprop", 0.01))):
        cfg = resolve("wgan", overrides=[f"train.device={device}"])
        assert (cfg.train.n_critic, cfg.optim.lr_g, cfg.optim.lr_d, cfg.optim.name, cfg.loss.clip) == want
    assert resolve("wgan", overrides=["train.device=cpu", "loss.clip=0.01"]).loss.clip == 0.01


@pytest.mark.parametrize("size", ["cpu", "paper"])
def test_the_clipped_critic_has_batch_norm_and_the_penalised_ones_none(size):
    # WGAN's code uses the DCGAN critic with batch norm (clipping alone shrinks its signal); a gradient
    # penalty is per sample, which batch norm would break (Gulrajani et al. 2017, section 4)
    def batch_norms(preset):
        _, D = build_nets(resolve(preset, overrides=[f"model.size={size}"]).model, (1, 28, 28))[:2]
        return sum(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())

    assert batch_norms("wgan") == batch_norms("dcgan") > 0
    assert batch_norms("wgan-gp") == batch_norms("wgan-lp") == 0


@pytest.mark.parametrize("preset", ["wgan-gp", "wgan-lp"])
def test_the_penalised_critics_take_one_faster_step_with_layer_norm_at_the_cpu_size(preset):
    for device, want in (("cpu", (1, 2e-4, 4e-4, [0.5, 0.9], 32, "ln")),
                         ("cuda", (5, 1e-4, 1e-4, [0.0, 0.9], 64, "none"))):
        cfg = resolve(preset, overrides=[f"train.device={device}"])
        got = (cfg.train.n_critic, cfg.optim.lr_g, cfg.optim.lr_d, cfg.optim.betas, cfg.train.batch_size,
               cfg.model.d["norm"])
        assert got == want
    assert resolve(preset, overrides=["train.device=cpu", "model.d.norm=none"]).model.d["norm"] == "none"


def test_stylegan2_trains_without_path_length_or_mixing_at_batch_16_at_the_cpu_size_only():
    cpu, paper = (resolve("stylegan2", overrides=[f"train.device={d}"]) for d in ("cpu", "cuda"))
    assert (cpu.loss.terms, cpu.model.g["mixing_prob"], cpu.train.batch_size) == ({"pl": 0.0}, 0.0, 16)
    assert (cpu.optim.lr_g, cpu.optim.lr_d, paper.optim.lr_g, paper.optim.lr_d) == (1e-2, 1e-2, 2e-3, 2e-3)
    assert cpu.model.g["channel_base"] == cpu.model.d["channel_base"] == 448
    assert (paper.loss.terms, paper.model.g["mixing_prob"], paper.train.batch_size) == ({"pl": 2.0}, 0.9, 32)
    mine = resolve("stylegan2", overrides=["train.device=cpu", "loss.terms.pl=2", "model.g.mixing_prob=0.9"])
    assert (mine.loss.terms, mine.model.g["mixing_prob"], mine.train.batch_size) == ({"pl": 2.0}, 0.9, 16)


def test_acgan_halves_its_class_term_at_the_cpu_size_only():
    assert resolve("acgan", overrides=["train.device=cpu"]).loss.terms == {"aux": 0.5}
    assert resolve("acgan", overrides=["train.device=cuda"]).loss.terms == {"aux": 1.0}
    assert resolve("acgan", overrides=["train.device=cpu", "loss.terms.aux=2"]).loss.terms == {"aux": 2.0}


@pytest.mark.parametrize("preset", ["vanilla", "vanilla-minimax"])
def test_the_mlp_gans_keep_an_ema_of_g_at_the_cpu_size_only(preset):
    paper, cpu = (resolve(preset, overrides=[f"train.device={d}"]) for d in ("cuda", "cpu"))
    assert cpu.train.ema == 0.999 and paper.train.ema == 0.0
    assert resolve(preset, overrides=["train.device=cpu", "train.ema=0"]).train.ema == 0.0
    assert (paper.model.g, paper.model.d, paper.optim) == (cpu.model.g, cpu.model.d, cpu.optim)  # same nets


def test_projection_takes_larger_adam_steps_and_an_ema_of_g_at_the_cpu_size_only():
    paper, cpu = (resolve("projection", overrides=[f"train.device={d}"]) for d in ("cuda", "cpu"))
    assert (cpu.optim.lr_g, cpu.optim.lr_d, cpu.optim.betas, cpu.train.ema) == (8e-4, 8e-4, [0.5, 0.999], 0.999)
    assert (paper.optim.lr_g, paper.optim.lr_d, paper.optim.betas, paper.train.ema) == (2e-4, 2e-4, [0.0, 0.9], 0.0)
    assert (cpu.train.n_critic, cpu.train.batch_size, cpu.model.g["width"]) == (1, 32, 32)
    sngan = resolve("sngan", overrides=["train.device=cpu"])  # the other SN-ResNet preset keeps SNGAN's rate
    assert (sngan.optim.lr_g, sngan.train.ema) == (2e-4, 0.0)



def _sn_layers(net) -> int:
    return sum(parametrize.is_parametrized(m, "weight") for m in net.modules())


@pytest.mark.parametrize("preset", ["sagan", "biggan"])
def test_sagan_and_biggan_drop_gs_spectral_norm_and_take_larger_steps_at_the_cpu_size_only(preset):
    paper, cpu = (resolve(preset, overrides=[f"train.device={d}"]) for d in ("cuda", "cpu"))
    assert (cpu.optim.lr_g, cpu.optim.lr_d, cpu.optim.betas, cpu.train.ema) == (8e-4, 8e-4, [0.5, 0.999], 0.999)
    assert (paper.optim.lr_g, paper.optim.lr_d) == {"sagan": (1e-4, 4e-4), "biggan": (5e-5, 2e-4)}[preset]
    assert cpu.model.init == "orthogonal"  # BigGAN's own; SAGAN's Xavier at the paper size
    assert paper.model.init == {"sagan": "xavier", "biggan": "orthogonal"}[preset]
    nets = {}
    for size, cfg in (("paper", paper), ("cpu", cpu)):
        cfg.model.g["width"] = cfg.model.d["width"] = 16  # the spectral norm is what is checked, not the widths
        G, D, _, _ = build_nets(cfg.model, (1, 28, 28), 10)
        nets[size] = _sn_layers(G), _sn_layers(D)
    assert nets["cpu"][0] == 0 < nets["paper"][0]  # G: none at the CPU size, on every layer at the paper size
    assert nets["cpu"][1] == nets["paper"][1] > 0  # D keeps it at both


def test_keys_the_user_sets_win_over_either_size(tmp_path):
    cfg = resolve("sngan", overrides=["model.size=cpu", "train.n_critic=3", "model.g.width=16"])
    assert cfg.train.n_critic == 3 and cfg.model.g == {"width": 16} and cfg.model.d == {"width": 32}
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"preset": "sngan", "model": {"d": {"width": 24}}, "train": {"n_critic": 4}}))
    cfg = resolve(file=f)
    settle_size(cfg, "cpu")
    assert cfg.model.d == {"width": 24} and cfg.train.n_critic == 4 and cfg.model.g == {"width": 32}
    # a whole section set by the user is not edited either
    cfg = resolve("dcgan", overrides=["model.g={norm: none}", "model.size=cpu"])
    assert cfg.model.g == {"norm": "none"} and cfg.model.d == {"width": 32}


def test_a_saved_config_is_not_resized_again(tmp_path):
    cfg = resolve("dcgan", overrides=["model.size=cpu"])
    f = tmp_path / "config.yaml"
    f.write_text(cfg.to_yaml())
    again = resolve(file=f, overrides=["model.g.width=40"])
    assert again.model.size == "cpu" and again.model.g == {"width": 40} and again.model.d == {"width": 32}


def test_unknown_size_is_one_clear_error():
    with pytest.raises(ConfigError, match="model.size.*choose from: auto, cpu, paper"):
        resolve("dcgan", overrides=["model.size=tiny"])
    with pytest.raises(ConfigError, match="cpu or paper"):
        apply_size(resolve("dcgan"), "auto")


def test_sizes_name_only_presets_and_sizes_that_exist():
    assert set(SIZES) <= set(PRESETS)
    assert all(set(v) <= {"cpu", "paper"} and v for v in SIZES.values())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_validates_at_both_sizes(preset):
    for size in ("cpu", "paper"):
        cfg = resolve(preset, overrides=[f"model.size={size}"])
        assert cfg.model.size == size
        validate(cfg)


GENERATE = sorted(p for p in SIZES if task_of(PRESETS[p][1]["model"]["arch"]).name == "generate"
                  and PRESETS[p][1].get("data", {}).get("name", "fashion-mnist") == "fashion-mnist")


@pytest.mark.parametrize("preset", GENERATE)
def test_the_cpu_size_is_never_larger_than_the_paper_size(preset):
    counts = {}
    for size in ("cpu", "paper"):
        cfg = resolve(preset, overrides=[f"model.size={size}"])
        G, D, _, _ = build_nets(cfg.model, (1, 28, 28), 10)
        counts[size] = (count_params(G), count_params(D))
    assert counts["cpu"][0] <= counts["paper"][0] and counts["cpu"][1] <= counts["paper"][1]
    assert counts["cpu"] != counts["paper"] or "model" not in SIZES.get(preset, {}).get("cpu", {})


def test_training_records_the_resolved_size(tmp_path):
    from ganforge import train
    run = train("dcgan", overrides=["data.limit=64", "train.steps=1", "train.batch_size=8", f"out={tmp_path}",
                                    "train.progress=false", "train.sample_every=0"])
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["size"] == "cpu" and saved["model"]["g"] == {"width": 32}


def test_another_net_family_does_not_get_the_presets_net_sizes():
    cfg = resolve("dcgan", overrides=["model.arch=mlp", "data.name=ring8"])
    settle_size(cfg, "cpu")
    assert cfg.model.size == "cpu" and cfg.model.g == {} and cfg.model.d == {}
    validate(cfg)


def test_a_config_built_in_python_keeps_what_differs_from_its_preset():
    from ganforge.config import Config, preset_config
    cfg = preset_config("sngan")
    cfg.model.g = {"width": 16}
    cfg.train.batch_size = 8
    settle_size(cfg, "cpu")
    assert cfg.model.g == {"width": 16} and cfg.model.d == {"width": 32} and cfg.train.n_critic == 1
    assert cfg.train.batch_size == 8  # set in Python: kept
    assert isinstance(cfg, Config)
