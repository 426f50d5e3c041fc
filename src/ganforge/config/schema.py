"""The run configuration's schema: typed dataclasses, and conversion from and to plain mappings.

Every field has a default and a comment; unknown keys and values of the wrong type raise
:class:`ConfigError` naming the key. This module imports nothing from the rest of ganforge but
the leaf modules (errors, registry helpers): the subsystems check their own sections (see
:mod:`ganforge.validation`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..registry import did_you_mean

MAX_SHOWN = 80  # characters of a value quoted in an error message


def short(value: Any) -> str:
    """``repr(value)`` cut to a readable length for one-line messages."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


@dataclass
class DataConfig:
    name: str = "fashion-mnist"  # a dataset name (see `ganforge datasets`) or folder:PATH
    root: str = ""  # where datasets live; "" = $GANFORGE_DATA or ~/.cache/ganforge/data
    image_size: int | str = 0  # resize images to this size, or HxW (e.g. 48x64: folder:PATH); 0 = the dataset's own
    channels: int = 0  # 1 (grayscale) or 3 (RGB); 0 = the dataset's own
    limit: int = 0  # use only the first N training samples (after data.classes); 0 = all
    # keep only these class indices of a labelled dataset, e.g. [5, 7]; [] = all. Applies to the
    # train split and to the run's default evaluation reference (NAME:test@5,7); labels keep their indices
    classes: list = field(default_factory=list)
    download: bool = True  # allow torchvision to download when the files are missing
    cache: bool | str = "auto"  # folder:PATH: decoded images in a memory-mapped cache file: auto (above 1 GB) | on | off
    workers: int = 0  # folder:PATH with a cache: DataLoader processes reading batches (and decoding to build it)
    labels_per_class: int = 10  # semi:NAME: labelled samples kept per class (Salimans et al.: 10 on MNIST)
    # time series (sines, csv:PATH, npy:PATH)
    length: int = 24  # steps T per sequence (sines; csv:FILE window length; csv:FOLDER: 0 = the longest file)
    features: int = 5  # sines: features F per sequence
    min_length: int = 0  # sines: > 0 draws variable lengths from {min_length, ..., length}
    stride: int = 1  # csv:FILE: rows between the starts of consecutive windows


@dataclass
class ModelConfig:
    arch: str = "dcgan"  # network family (see `ganforge nets`)
    size: str = "auto"  # auto | cpu | paper: the preset's CPU or published size (auto: cpu unless on CUDA)
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
    pl_every: int = 4  # lazy path-length regularisation (loss.terms.pl) every N G steps, weight scaled by N


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
    amp: bool | str = "auto"  # auto (bf16 for images on CPUs with AMX / AVX512-BF16) | off | bf16 | fp16 (CUDA)
    compile: bool = False  # torch.compile the nets for the training phases (checkpoints keep the plain weights)
    channels_last: bool | str = "auto"  # NHWC conv layout: auto (on where amp auto picks bf16) | on | off
    init: str = ""  # start a new run from this run folder or model folder's weights ("" = from scratch)
    init_what: str = "g"  # g: the generator only | gd: G and D (D needs a run folder)
    freeze_d: int = 0  # FreezeD (Mo et al. 2020): keep D's first N blocks fixed while fine-tuning
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



# -- conversion from mappings ------------------------------------------------------------

def _is_dataclass_instance(x) -> bool:
    return dataclasses.is_dataclass(x) and not isinstance(x, type)


def image_hw(value: int | str) -> tuple[int, int]:
    """``data.image_size`` as (height, width): 64 -> (64, 64), "48x64" -> (48, 64), 0 -> (0, 0)."""
    if isinstance(value, str):
        h, _, w = value.lower().partition("x")
        return int(h), int(w)
    return int(value), int(value)


def _coerce_size(value: Any, key: str) -> int | str:
    """An image size: an integer, or "HxW" (a square "NxN" becomes the integer N)."""
    if isinstance(value, str) and "x" in value.lower():
        h, _, w = value.lower().replace(" ", "").partition("x")
        if not (h.isdigit() and w.isdigit()) or int(h) <= 0 or int(w) <= 0:
            raise ConfigError(f"{key}: expected an integer or HxW with positive H and W (e.g. 48x64), "
                              f"got {short(value)}")
        return int(h) if int(h) == int(w) else f"{int(h)}x{int(w)}"
    try:
        return _coerce(value, int, key)
    except ConfigError:
        raise ConfigError(f"{key}: expected an integer or HxW (e.g. 48x64), got {short(value)}") from None


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Convert ``value`` to the field type ``typ`` or raise a ConfigError naming ``key``."""
    if typ == int | str:
        return _coerce_size(value, key)
    if typ == bool | str:  # a switch with a third value ("auto"): YAML's on/off/yes/no are booleans
        return ("on" if value else "off") if isinstance(value, bool) else _coerce(value, str, key)
    origin = typing.get_origin(typ) or typ
    if origin is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}: expected true/false, got {short(value)}")
    if origin is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {short(value)}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {short(value)}")
    if origin is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {short(value)}")
        try:
            out = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{key}: expected a number, got {short(value)}") from None
        if not math.isfinite(out):
            raise ConfigError(f"{key}: expected a finite number, got {short(value)}")
        return out
    if origin is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {short(value)}")
        return "" if value is None else str(value)
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {short(value)}")
        return copy.deepcopy(value)
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {short(value)}")
        return copy.deepcopy(value)
    return value


def _field_types(obj) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints[f.name] for f in dataclasses.fields(obj)}


def _merge(obj, d: dict, prefix: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {short(d)}")
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


def _other_section(cfg: Config, key: str) -> str:
    """' (did you mean 'optim.lr_d'?)' when ``key`` exists in another section."""
    for section in dataclasses.fields(cfg):
        sub = getattr(cfg, section.name)
        if _is_dataclass_instance(sub) and key in _field_types(sub):
            return f" (did you mean '{section.name}.{key}'?)"
    return ""


def set_key(cfg: Config, path: list[str], value: Any) -> None:
    """Set the config key ``path`` (["train", "n_critic"]) to ``value``, checked and converted."""
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
            hint = _other_section(cfg, part) or did_you_mean(part, types)  # an exact key elsewhere first
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
