"""Typed run configuration: dataclasses, named presets, ``--set a.b=c`` overrides, YAML in and out.

Resolution order: dataclass defaults -> preset -> YAML file -> ``--set`` overrides -> validation.
Unknown keys and invalid values raise :class:`ConfigError` before anything is trained, naming
the key and the closest valid one.
"""

from __future__ import annotations

import copy
import math
import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .registry import did_you_mean


class ConfigError(ValueError):
    """A configuration mistake; the message names the key and what would be valid."""


@dataclass
class DataConfig:
    name: str = "fashion-mnist"  # a dataset name (see `ganforge datasets`) or folder:PATH
    root: str = ""  # where datasets live; "" = $GANFORGE_DATA or ~/.cache/ganforge/data
    image_size: int = 0  # resize images to this size; 0 = the dataset's own size
    channels: int = 0  # 1 (grayscale) or 3 (RGB); 0 = the dataset's own
    limit: int = 0  # use only the first N training samples; 0 = all
    download: bool = True  # allow torchvision to download when the files are missing


@dataclass
class ModelConfig:
    arch: str = "dcgan"  # network family (see `ganforge nets`)
    z_dim: int = 100  # latent size
    latent: str = "normal"  # latent distribution: normal | uniform (on [-1, 1])
    init: str = "normal"  # weight initialisation (see `ganforge inits`); "default" keeps PyTorch's
    init_gain: float = 0.02  # std for normal, bound for uniform, gain for xavier/orthogonal
    conditional: bool = False  # class-conditional G and D (the dataset's labels reach both nets)
    g: dict = field(default_factory=dict)  # extra generator arguments (checked against its signature)
    d: dict = field(default_factory=dict)  # extra discriminator arguments


@dataclass
class LossConfig:
    name: str = "ns"  # adversarial loss (see `ganforge losses`)
    penalties: dict = field(default_factory=dict)  # regularizer name -> weight, e.g. {gp: 10}
    penalty_every: int = 1  # apply penalties every N D-steps, weight scaled by N (lazy regularisation)
    clip: float = 0.0  # clip D weights to [-clip, clip] after each D step (WGAN); 0 = off
    smooth: float = 0.0  # one-sided label smoothing: real target 1 - smooth (minimax / ns losses)
    terms: dict = field(default_factory=dict)  # extra loss terms name -> weight, e.g. {l1: 100}
    adv_weight: float = 1.0  # weight of the adversarial term in G's loss (SRGAN: 1e-3 beside content)
    pool: int = 0  # history of generated images shown to D (CycleGAN: 50); 0 = the newest only


@dataclass
class AugmentConfig:
    policy: str = ""  # DiffAugment policy for D's inputs (real and fake), e.g. color,translation,cutout
    p: float = -1.0  # probability of augmenting each sample; -1 = 1 for a fixed p, 0 as ADA's start
    ada_target: float = 0.0  # ADA: adapt p towards E[sign(D(x))] = target (0.6); 0 = fixed p
    ada_interval: int = 4  # ADA: adjust p every N D steps
    ada_kimg: float = 500.0  # ADA: thousands of real images for p to move from 0 to 1
    noise: float = 0.0  # instance noise: std of Gaussian noise added to D's inputs, annealed to 0
    noise_steps: int = 0  # steps over which the noise anneals to 0; 0 = train.steps


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | rmsprop | sgd
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: list = field(default_factory=lambda: [0.5, 0.999])  # Adam's (beta1, beta2)
    momentum: float = 0.0  # SGD / RMSprop momentum
    schedule: str = "constant"  # learning-rate schedule over train.steps: constant | linear | cosine
    decay_start: float = 0.0  # fraction of train.steps before the decay begins (CycleGAN: 0.5)
    weight_decay: float = 0.0


@dataclass
class TrainConfig:
    steps: int = 2000  # generator steps
    batch_size: int = 64
    n_critic: int = 1  # D steps per G step (k in Goodfellow et al. 2014)
    ema: float = 0.0  # decay of an exponential moving average of G's weights; 0 = off
    ema_warmup: bool = True  # use decay min(ema, (1 + step) / (10 + step)) so early weights fade
    max_minutes: float = 0.0  # stop after this wall-clock budget; 0 = no limit
    log_every: int = 50
    sample_every: int = 500  # 0 = only at the end
    ckpt_every: int = 1000  # 0 = only at the end
    keep_ckpts: int = 3  # keep the last K checkpoints
    grid_size: int = 64  # images in each sample grid
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 = PyTorch's default
    deterministic: bool = False  # use deterministic algorithms (bit-identical reruns on the CPU)
    nan_retries: int = 3  # on NaN/Inf: roll back to the last good checkpoint this many times, then stop
    nan_lr_scale: float = 0.5  # multiply both learning rates by this at each rollback
    progress: bool = True  # show a progress bar
    amp: str = "off"  # mixed precision on CUDA: off | bf16 | fp16 (fp16 with loss scaling); ignored on the CPU
    compile: bool = False  # torch.compile the nets for the training phases (checkpoints keep the plain weights)
    channels_last: bool = False  # NHWC memory layout for conv nets on CUDA; ignored on the CPU
    sync_bn: bool = False  # several GPUs: batch norm over the global batch (SyncBatchNorm, CUDA only)


@dataclass
class EvalConfig:
    every: int = 0  # evaluate during training every N steps; 0 = off
    metrics: str = "fid"  # comma-separated: fid, kid, pr, dc, is
    features: str = "fmnist"  # feature extractor (see `ganforge list features`)
    n: int = 5000  # generated samples per evaluation
    ref: str = ""  # reference "dataset:split"; "" = the training dataset's test split
    best: str = "fid"  # keep checkpoints/best/ by this result key (lower is better); "" = off


@dataclass
class Config:
    preset: str = ""  # the preset this config started from
    seed: int = 0
    out: str = "runs"  # parent folder of run folders
    name: str = ""  # run folder prefix; "" = the preset name
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    # -- conversion -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        cfg = cls()
        _merge(cfg, d, "")
        return cfg

    @property
    def data_root(self) -> Path:
        root = self.data.root or os.environ.get("GANFORGE_DATA") or "~/.cache/ganforge/data"
        return Path(root).expanduser()


# -- presets -------------------------------------------------------------------------------

_WGAN_NETS = {"d": {"norm": "none"}}
_PIX2PIX = {  # shared by the pix2pix and deblur presets (they differ in the data)
    "model": {"arch": "pix2pix", "z_dim": 0, "init": "normal", "init_gain": 0.02},
    "loss": {"name": "ns", "terms": {"l1": 100.0}},
    "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]},
    "train": {"batch_size": 16}, "eval": {"best": ""}}

PRESETS: dict[str, tuple[str, dict]] = {
    "vanilla": (
        "Goodfellow et al. 2014: MLP G and D (Linear+BN+ReLU/LeakyReLU), non-saturating loss",
        {"model": {"arch": "mlp", "init": "xavier", "init_gain": 1.0},
         "loss": {"name": "ns"}, "optim": {"lr_g": 2e-4, "lr_d": 2e-4}},
    ),
    "vanilla-minimax": (
        "Goodfellow et al. 2014 with the saturating minimax loss, exactly V(D, G)",
        {"model": {"arch": "mlp", "init": "xavier", "init_gain": 1.0},
         "loss": {"name": "minimax"}},
    ),
    "dcgan": (
        "Radford et al. 2015: strided (transposed) convs, BN, ReLU/LeakyReLU, N(0, 0.02) init",
        {"model": {"arch": "dcgan", "init": "normal", "init_gain": 0.02},
         "loss": {"name": "ns"}, "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4,
                                            "betas": [0.5, 0.999]}},
    ),
    "wgan": (
        "Arjovsky et al. 2017: critic without sigmoid, weight clipping 0.01, RMSprop 5e-5, n_critic 5",
        {"model": {"arch": "dcgan", "d": _WGAN_NETS["d"]},
         "loss": {"name": "wasserstein", "clip": 0.01},
         "optim": {"name": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5},
         "train": {"n_critic": 5}},
    ),
    "wgan-gp": (
        "Gulrajani et al. 2017: gradient penalty (lambda 10) at per-sample interpolates, Adam(0, 0.9)",
        {"model": {"arch": "dcgan", "d": _WGAN_NETS["d"]},
         "loss": {"name": "wasserstein", "penalties": {"gp": 10.0}},
         "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.0, 0.9]},
         "train": {"n_critic": 5}},
    ),
    "wgan-lp": (
        "Petzka et al. 2018: one-sided Lipschitz penalty E[max(0, |grad D| - 1)^2], lambda 10",
        {"model": {"arch": "dcgan", "d": _WGAN_NETS["d"]},
         "loss": {"name": "wasserstein", "penalties": {"lp": 10.0}},
         "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.0, 0.9]},
         "train": {"n_critic": 5}},
    ),
    "lsgan": (
        "Mao et al. 2017: least-squares loss (a=0, b=1, c=1) on DCGAN nets",
        {"model": {"arch": "dcgan"}, "loss": {"name": "ls"},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}},
    ),
    "hinge": (
        "Hinge loss (Lim & Ye 2017; Miyato et al. 2018) on DCGAN nets, Adam(0.5, 0.999)",
        {"model": {"arch": "dcgan"}, "loss": {"name": "hinge"},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}},
    ),
    # -- modern and conditional GANs ---------------------------------------------------------
    "sngan": (
        "Miyato et al. 2018: ResNet G/D, spectral norm in D, hinge loss, n_critic 5, Adam(2e-4; 0, 0.9)",
        {"model": {"arch": "resnet", "init": "xavier", "init_gain": 1.0},
         "loss": {"name": "hinge"},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.0, 0.9]},
         "train": {"n_critic": 5}},
    ),
    "cgan": (
        "Mirza & Osindero 2014: the label concatenated to G's input and to D's input (DCGAN nets)",
        {"model": {"arch": "dcgan", "conditional": True, "d": {"cond": "concat"}},
         "loss": {"name": "ns"}, "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}},
    ),
    "acgan": (
        "Odena et al. 2017: D also classifies (auxiliary cross-entropy on real and generated), DCGAN nets",
        {"model": {"arch": "dcgan", "conditional": True, "d": {"cond": "acgan"}},
         "loss": {"name": "ns", "terms": {"aux": 1.0}},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}},
    ),
    "projection": (
        "Miyato & Koyama 2018: projection D + class-conditional BN in G, ResNet nets with spectral "
        "norm, hinge loss, n_critic 5",
        {"model": {"arch": "resnet", "conditional": True, "init": "xavier", "init_gain": 1.0},
         "loss": {"name": "hinge"},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.0, 0.9]},
         "train": {"n_critic": 5}},
    ),
    "projection-dcgan": (
        "projection D and class-conditional G on DCGAN nets, hinge loss, one D step: the CPU-budget "
        "conditional preset",
        {"model": {"arch": "dcgan", "conditional": True, "d": {"cond": "projection"}},
         "loss": {"name": "hinge"},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}},
    ),
    "biggan": (
        "Brock et al. 2019, small: shared class embedding + hierarchical z into conditional BN, "
        "self-attention, SN in G and D, orthogonal reg. 1e-4, TTUR (5e-5 / 2e-4), 2 D steps, EMA",
        {"model": {"arch": "biggan", "conditional": True, "init": "orthogonal", "init_gain": 1.0,
                   "z_dim": 120},
         "loss": {"name": "hinge", "terms": {"ortho": 1e-4}},
         "optim": {"name": "adam", "lr_g": 5e-5, "lr_d": 2e-4, "betas": [0.0, 0.999]},
         "train": {"n_critic": 2, "ema": 0.999}},
    ),
    "pacgan": (
        "Lin et al. 2018: DCGAN with a packed discriminator (D judges 2 samples at a time)",
        {"model": {"arch": "dcgan", "d": {"pack": 2}}, "loss": {"name": "ns"},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}},
    ),
    # -- image-to-image ------------------------------------------------------------------------
    "pix2pix": (
        "Isola et al. 2017: U-Net G, conditional PatchGAN D, adversarial + 100 x L1; edges -> item",
        {"data": {"name": "fmnist-edges"}, **_PIX2PIX},
    ),
    "deblur": (
        "pix2pix machinery on blurred -> sharp Fashion-MNIST pairs",
        {"data": {"name": "fmnist-blur"}, **_PIX2PIX},
    ),
    "cyclegan": (
        "Zhu et al. 2017: two ResNet Gs, two PatchGAN Ds, LSGAN loss, cycle 10, identity 0.5, "
        "pool of 50, linear decay over the second half; sneakers <-> ankle boots",
        {"data": {"name": "fmnist-shoes"},
         "model": {"arch": "cyclegan", "z_dim": 0, "init": "normal", "init_gain": 0.02},
         "loss": {"name": "ls", "terms": {"cycle": 10.0, "identity": 0.5}, "pool": 50},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999], "schedule": "linear",
                   "decay_start": 0.5},
         "train": {"batch_size": 8}, "eval": {"best": ""}},
    ),
    "srgan": (
        "Ledig et al. 2017: SRResNet G (pixel shuffle), strided-conv D, MSE + feature content loss "
        "+ 1e-3 x adversarial; 7x7 -> 28x28 (x4)",
        {"data": {"name": "fmnist-sr4"},
         "model": {"arch": "srgan", "z_dim": 0, "init": "kaiming"},
         "loss": {"name": "ns", "terms": {"l2": 1.0, "feature": 0.01}, "adv_weight": 1e-3},
         "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.9, 0.999]},
         "train": {"batch_size": 16}, "eval": {"best": ""}},
    ),
}

DEFAULT_PRESET = "dcgan"
AMP_MODES = ("off", "bf16", "fp16")


def preset_config(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'{did_you_mean(name, PRESETS)}; "
                          f"choose from: {', '.join(PRESETS)}")
    cfg = Config.from_dict(copy.deepcopy(PRESETS[name][1]))
    cfg.preset = name
    return cfg


# -- merging and overrides -----------------------------------------------------------------

def _is_dataclass_instance(x) -> bool:
    return dataclasses.is_dataclass(x) and not isinstance(x, type)


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Convert ``value`` to the field type ``typ`` or raise a ConfigError naming ``key``."""
    origin = typing.get_origin(typ) or typ
    if origin is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if origin is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if origin is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if not math.isfinite(out):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return out
    if origin is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return "" if value is None else str(value)
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return copy.deepcopy(value)
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return copy.deepcopy(value)
    return value


def _field_types(obj) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints[f.name] for f in dataclasses.fields(obj)}


def _merge(obj, d: dict, prefix: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {d!r}")
    types = _field_types(obj)
    for key, value in d.items():
        full = f"{prefix}{key}"
        if key not in types:
            raise ConfigError(f"unknown config key '{full}'{did_you_mean(key, types)}; "
                              f"valid keys here: {', '.join(types)}")
        current = getattr(obj, key)
        if _is_dataclass_instance(current):
            _merge(current, value, full + ".")
        else:
            setattr(obj, key, _coerce(value, types[key], full))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b=c`` into (["a", "b"], value) with YAML scalars/lists (``1e-4``, ``[0, 0.9]``)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            pass
    return key.split("."), value


def _other_section(cfg: Config, key: str) -> str:
    """' (did you mean 'optim.lr_d'?)' when ``key`` exists in another section."""
    for section in dataclasses.fields(cfg):
        sub = getattr(cfg, section.name)
        if _is_dataclass_instance(sub) and key in _field_types(sub):
            return f" (did you mean '{section.name}.{key}'?)"
    return ""


def apply_override(cfg: Config, text: str) -> None:
    path, value = parse_override(text)
    obj: Any = cfg
    for i, part in enumerate(path):
        full = ".".join(path[: i + 1])
        last = i == len(path) - 1
        if isinstance(obj, dict):  # free-form mapping fields (model.g, loss.penalties, ...)
            if last:
                obj[part] = value
            else:
                obj = obj.setdefault(part, {})
                if not isinstance(obj, dict):
                    raise ConfigError(f"{full} is not a mapping")
            continue
        types = _field_types(obj)
        if part not in types:
            hint = did_you_mean(part, types) or _other_section(cfg, part)
            raise ConfigError(f"unknown config key '{full}'{hint}; valid keys here: {', '.join(types)}")
        if last:
            current = getattr(obj, part)
            if _is_dataclass_instance(current):
                _merge(current, value, full + ".")
            else:
                setattr(obj, part, _coerce(value, types[part], full))
        else:
            obj = getattr(obj, part)
            if not (_is_dataclass_instance(obj) or isinstance(obj, dict)):
                raise ConfigError(f"{full} is a value, not a section")


def load_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        d = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{p} is not valid YAML{where}: {problem}") from None
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: a config file must hold a mapping")
    return d


def resolve(preset: str | None = None, file: str | Path | None = None,
            overrides: list[str] | tuple = ()) -> Config:
    """Build a validated config from a preset, an optional YAML file and ``a.b=c`` overrides."""
    file_d = load_yaml(file) if file else {}
    preset = preset or file_d.get("preset") or DEFAULT_PRESET
    cfg = preset_config(preset)
    if file_d:
        _merge(cfg, file_d, "")
        cfg.preset = preset
    for o in overrides:
        apply_override(cfg, o)
    validate(cfg)
    return cfg


# -- validation ----------------------------------------------------------------------------

def _choice(key: str, value: str, choices) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{key}: unknown value '{value}'{did_you_mean(value, choices)}; "
                          f"choose from: {', '.join(choices)}")


def _positive(key: str, value, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def validate(cfg: Config) -> Config:
    """Check every value against its registry or range; raise ConfigError on the first problem."""
    from . import losses, nets, optim, regularizers  # noqa: F401  (populate registries)
    from .data import DATASETS
    from .nets import INITS, LATENTS, NETS

    name = cfg.data.name
    prefix = next((p for p in ("folder:", "paired:", "unpaired:") if name.startswith(p)), None)
    if prefix is None:
        _choice("data.name", name, list(DATASETS.keys()) + ["folder:PATH", "paired:PATH", "unpaired:PATH"])
    elif not name[len(prefix):]:
        raise ConfigError(f"data.name: {prefix} needs a path, e.g. {prefix}/data/images")
    _positive("data.image_size", cfg.data.image_size, allow_zero=True)
    if cfg.data.channels not in (0, 1, 3):
        raise ConfigError(f"data.channels: must be 0 (dataset's own), 1 or 3, got {cfg.data.channels}")
    _positive("data.limit", cfg.data.limit, allow_zero=True)

    _choice("model.arch", cfg.model.arch, NETS.keys())
    _choice("model.latent", cfg.model.latent, LATENTS)
    _choice("model.init", cfg.model.init, INITS.keys())
    image_to_image = set(NETS.get(cfg.model.arch).kinds) <= {"paired", "unpaired"}
    _positive("model.z_dim", cfg.model.z_dim, allow_zero=image_to_image)  # pix2pix: dropout is the noise
    _positive("model.init_gain", cfg.model.init_gain)

    _choice("loss.name", cfg.loss.name, losses.LOSSES.keys())
    for pname, weight in cfg.loss.penalties.items():
        _choice("loss.penalties", pname, regularizers.REGULARIZERS.keys())
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise ConfigError(f"loss.penalties.{pname}: weight must be a number >= 0, got {weight!r}")
    _positive("loss.penalty_every", cfg.loss.penalty_every)
    _positive("loss.clip", cfg.loss.clip, allow_zero=True)
    if not 0 <= cfg.loss.smooth < 1:
        raise ConfigError(f"loss.smooth: must be in [0, 1), got {cfg.loss.smooth}")
    if cfg.loss.smooth and not losses.LOSSES.get(cfg.loss.name).probabilistic:
        raise ConfigError(f"loss.smooth: label smoothing needs a probabilistic loss (minimax, ns), "
                          f"not '{cfg.loss.name}'")
    from .objective import term_names
    for tname, weight in cfg.loss.terms.items():
        _choice("loss.terms", tname, term_names())
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise ConfigError(f"loss.terms.{tname}: weight must be a number >= 0, got {weight!r}")
    _positive("loss.pool", cfg.loss.pool, allow_zero=True)
    _positive("loss.adv_weight", cfg.loss.adv_weight, allow_zero=True)

    a = cfg.augment
    if a.policy:
        from .augment import AUGMENTATIONS
        for part in a.policy.split(","):
            _choice("augment.policy", part.strip(), AUGMENTATIONS.keys())
    if not (0 <= a.p <= 1 or a.p == -1):
        raise ConfigError(f"augment.p: must be in [0, 1] (or -1 for the default), got {a.p}")
    if not 0 <= a.ada_target < 1:
        raise ConfigError(f"augment.ada_target: must be in [0, 1), got {a.ada_target}")
    _positive("augment.ada_interval", a.ada_interval)
    _positive("augment.ada_kimg", a.ada_kimg)
    _positive("augment.noise", a.noise, allow_zero=True)
    _positive("augment.noise_steps", a.noise_steps, allow_zero=True)

    _choice("optim.name", cfg.optim.name, optim.OPTIMIZERS.keys())
    _positive("optim.lr_g", cfg.optim.lr_g)
    _positive("optim.lr_d", cfg.optim.lr_d)
    _choice("optim.schedule", cfg.optim.schedule, optim.SCHEDULES)
    if not 0 <= cfg.optim.decay_start < 1:
        raise ConfigError(f"optim.decay_start: must be in [0, 1), got {cfg.optim.decay_start}")
    if len(cfg.optim.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1
                                             for b in cfg.optim.betas):
        raise ConfigError(f"optim.betas: expected two numbers in [0, 1), got {cfg.optim.betas!r}")

    t = cfg.train
    _positive("train.steps", t.steps)
    _positive("train.batch_size", t.batch_size)
    _positive("train.n_critic", t.n_critic)
    if not 0.0 <= t.ema < 1.0:
        raise ConfigError(f"train.ema: decay must be in [0, 1), got {t.ema}")
    for k in ("sample_every", "ckpt_every", "threads"):
        _positive(f"train.{k}", getattr(t, k), allow_zero=True)
    _positive("train.log_every", t.log_every)
    _positive("train.keep_ckpts", t.keep_ckpts)
    _positive("train.grid_size", t.grid_size)
    _positive("train.max_minutes", t.max_minutes, allow_zero=True)
    _positive("train.nan_retries", t.nan_retries, allow_zero=True)
    if not 0 < t.nan_lr_scale <= 1:
        raise ConfigError(f"train.nan_lr_scale: must be in (0, 1], got {t.nan_lr_scale}")
    if not (t.device in ("auto", "cpu", "cuda") or t.device.startswith("cuda:")):
        raise ConfigError(f"train.device: expected auto, cpu, cuda or cuda:N, got '{t.device}'")
    _choice("train.amp", t.amp, AMP_MODES)
    if t.amp == "fp16" and any(float(w) > 0 for w in cfg.loss.penalties.values()):
        raise ConfigError("train.amp=fp16 cannot be combined with loss.penalties: their input gradients are not "
                          "loss-scaled and can underflow in fp16; use train.amp=bf16")

    e = cfg.eval
    _positive("eval.every", e.every, allow_zero=True)
    if e.every:
        from .evaluate import EvalError, parse_metrics
        from .features import FEATURES
        try:
            parse_metrics(e.metrics)
        except EvalError as err:
            raise ConfigError(f"eval.metrics: {err}") from None
        _choice("eval.features", e.features, FEATURES.keys())
        if e.n < 2:
            raise ConfigError(f"eval.n: must be >= 2, got {e.n}")
        if not e.ref and cfg.data.name not in ("fashion-mnist", "mnist", "cifar10"):
            raise ConfigError(f"eval.ref: set a reference (e.g. fashion-mnist:test) for data '{cfg.data.name}'")

    # generator / discriminator extra arguments must match the constructors
    fam = NETS.get(cfg.model.arch)
    fam.check_kwargs(cfg.model.g, cfg.model.d)
    return cfg
