"""Where and how a run computes: device choice, seeding, thread count, and the speed options
(mixed precision, loss scaling, memory format, compilation) resolved once per run."""

from __future__ import annotations

import functools
import platform
import random
import sys
from contextlib import nullcontext

import numpy as np
import torch

from ._version import __version__
from .errors import ConfigError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name}, but CUDA is not available on this machine; use auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("train.device=mps, but Apple's MPS backend is not available here; use auto or cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def configure_torch(cfg) -> None:
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels


def notice(dist, msg: str) -> None:
    if dist.is_main:
        print(f"warning: {msg}", file=sys.stderr)


def cpu_native_bf16() -> bool:
    """True when this CPU computes in bf16 in hardware (AVX512-BF16 or AMX tiles): only there is
    bf16 autocast faster than fp32 on the CPU (elsewhere oneDNN emulates it, more slowly)."""
    return any(getattr(torch.cpu, name, lambda: False)()
               for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def settle_speed(cfg, device_type: str, images: bool = True) -> bool:
    """Resolve ``train.amp=auto`` and ``train.channels_last=auto`` for the device the run trains on
    (True when it changed the config, which then records what ran): bf16 autocast and NHWC
    convolutions for image data on a CPU with bf16 instructions, where together they made 1.2 to 2.4
    times as many steps per CPU-second on the conv presets (BENCHMARKS section 18); fp32 and the
    default layout everywhere else: on other CPUs, for vectors and sequences (bf16's 8-bit mantissa
    would round a 2-D point by up to 1/128 of its size), and on CUDA (choose bf16 / fp16 there)."""
    t = cfg.train
    if "auto" not in (t.amp, t.channels_last):
        return False
    fast = images and device_type == "cpu" and cpu_native_bf16()
    if t.amp == "auto":
        t.amp = "bf16" if fast else "off"
    if t.channels_last == "auto":
        t.channels_last = "on" if fast else "off"
    return True


def speed_options(cfg, dist, images: bool = True) -> dict:
    """How the phases run: autocast dtype, gradient scaling, memory format, what is compiled.

    CUDA takes ``train.amp`` as given. The CPU takes ``bf16`` where it has bf16 instructions
    (:func:`cpu_native_bf16`) and ``channels_last`` (oneDNN's convolutions are faster in NHWC);
    what a device cannot speed up is refused with a one-line warning and the run stays in fp32.
    ``auto`` values are resolved first (:func:`settle_speed`; ``images``: the samples are images)."""
    settle_speed(cfg, dist.device.type, images)
    t, device = cfg.train, dist.device
    amp, channels_last = t.amp, t.channels_last in (True, "on")
    if device.type != "cuda" and amp != "off":
        if device.type == "cpu" and amp == "bf16":
            if not cpu_native_bf16():
                notice(dist, "train.amp=bf16 is ignored: this CPU has no bf16 instructions (AVX512-BF16 or AMX), so "
                             "bf16 would be slower than fp32 here; training in fp32")
                amp = "off"
        else:
            hint = "; bf16 is, on CPUs with AMX or AVX512-BF16" if device.type == "cpu" else ""
            notice(dist, f"train.amp={amp} is ignored on {device.type} (no fast {amp} there{hint}); training in fp32")
            amp = "off"
    if channels_last and device.type not in ("cuda", "cpu"):
        notice(dist, f"train.channels_last is ignored on {device.type}")
        channels_last = False
    dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    penalties = any(float(w) > 0 for w in cfg.loss.penalties.values())
    if t.compile and penalties:
        notice(dist, "train.compile: the D phase runs D uncompiled, because loss.penalties differentiate "
                     "twice (torch.compile has no double backward)")
    return {"autocast": functools.partial(torch.autocast, device.type, dtype=dtype) if dtype else nullcontext,
            "scaler": amp == "fp16",
            "memory_format": torch.channels_last if channels_last else torch.preserve_format,
            "compile_g": t.compile, "compile_d": t.compile and not penalties}


def to_device(batch, device, memory_format=torch.preserve_format) -> tuple:
    """A CPU batch on ``device``: pinned first for an asynchronous copy to a GPU, image tensors
    in ``memory_format`` (channels_last on CUDA)."""
    cuda = torch.device(device).type == "cuda"

    def move(t):
        if t is None:
            return None
        if cuda and t.device.type == "cpu":
            t = t.pin_memory()
        return t.to(device, non_blocking=True, memory_format=memory_format if t.dim() == 4 else torch.preserve_format)
    return tuple(move(t) for t in batch)


def environment(device, dist=None) -> dict:
    env = {"ganforge": __version__, "torch": torch.__version__, "python": platform.python_version(),
           "device": str(device), "threads": torch.get_num_threads()}
    if dist is not None and dist.active:
        env["processes"] = dist.world_size
    return env


__all__ = ["configure_torch", "cpu_native_bf16", "environment", "notice", "pick_device", "seed_everything",
           "settle_speed", "speed_options", "to_device"]
