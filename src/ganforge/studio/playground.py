"""The studio's playground: trained generators answer requests from the page.

The server loads a run's generator with :func:`ganforge.load` (safetensors weights and a
checksummed manifest; nothing is unpickled), keeps a few loaded models, and turns the page's
requests into pictures. Which panel a run gets and how a request reaches the model is decided
in ONE place, :func:`model_adapter`; the rest of this file knows nothing of model kinds.
"""

from __future__ import annotations

import io
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..errors import UsageError
from ..rundir import CHECKPOINTS
from .runs import list_checkpoints

MAX_SAMPLES = 64  # most samples one request may ask for
MAX_INTERP_STEPS = 16


@dataclass
class Panel:
    """What the playground offers for one loaded model.

    ``kind`` is the panel the page shows: "sample" (seed, class, truncation, interpolation) or
    "translate" (upload an image). ``controls`` tells the page which inputs to show.
    The callables take plain, already range-checked numbers and return pictures as tensors:
    images (N, C, H, W) in [-1, 1], or points (N, D) for vector data."""

    kind: str
    controls: dict = field(default_factory=dict)
    sample: Callable[..., Tensor] | None = None        # (n, seed, label, truncation) -> samples
    interpolate: Callable[..., Tensor] | None = None   # (seed_a, seed_b, steps, label, truncation) -> images
    translate: Callable[..., Tensor] | None = None     # (images (N, C, H, W), direction) -> images
    input_shape: Callable[[str], tuple] | None = None  # direction -> (C, H, W) the model takes


# ================================================================================================
# MODEL-KIND ADAPTER: the only model-kind-dependent code in the studio. It maps a generator from
# ganforge.load() to the playground panel and the calls behind it. Moving the studio to another
# task API means rewriting this function (and nothing else in ganforge/studio).
# ================================================================================================
def model_adapter(gen) -> Panel:
    if gen.task.takes_images:  # image-to-image: pix2pix / SR / CycleGAN
        a, b = gen.args.get("cond_shape"), gen.args.get("out_shape")
        upscale = not gen.task.two_way and a is not None and tuple(a[1:]) != tuple(b[1:])
        return Panel(
            kind="translate",
            controls={"directions": ["ab", "ba"] if gen.task.two_way else ["ab"],
                      "upscale": upscale, "input_shape": list(gen.input_shape("ab"))},
            translate=lambda x, direction: gen.translate(x, direction=direction),
            input_shape=gen.input_shape)

    def sample(n, seed, label, truncation):
        return gen.sample(n, seed=seed, labels=label, truncation=truncation)

    def interpolate(seed_a, seed_b, steps, label, truncation):
        from ..interpolate import slerp
        tz = None if gen.style_based else truncation  # style-based: truncation is psi in w (below)
        za = gen.latent(1, seed=seed_a, truncation=tz)[0]
        zb = gen.latent(1, seed=seed_b, truncation=tz)[0]
        z = slerp(za, zb, torch.linspace(0, 1, steps))  # (steps, z_dim)
        if gen.conditional and label is None:  # one class for the whole walk, drawn from seed_a
            label = int(torch.randint(gen.num_classes, (1,), generator=torch.Generator().manual_seed(seed_a)))
        return gen(z, gen.labels(steps, label) if gen.conditional else None, psi=truncation)

    images = len(gen.data_shape) == 3
    return Panel(
        kind="sample",
        controls={"classes": gen.num_classes, "truncation": gen.cfg.model.latent == "normal" or gen.style_based,
                  "picture": "grid" if images else "plot",
                  "interpolate": images, "default_n": 16 if images else 512},
        sample=sample, interpolate=interpolate if images else None)
# ================================================================================================


def to_png(x: Tensor, nrow: int | None = None) -> bytes:
    """Images (N, C, H, W) in [-1, 1] as one PNG grid; points (N, D) as a plot."""
    from PIL import Image
    from torchvision.utils import make_grid
    if x.dim() == 4:
        grid = make_grid(x.float().clamp(-1, 1), nrow=nrow or max(1, round(x.shape[0] ** 0.5)),
                         normalize=True, value_range=(-1, 1), padding=2, pad_value=1.0)
        arr = grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        return buf.getvalue()
    from ..viz import save_samples
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "plot.png"
        save_samples(x, p)
        return p.read_bytes()


def decode_upload(data: bytes, shape: tuple, max_bytes: int) -> Tensor:
    """Uploaded bytes -> (1, C, H, W) in [-1, 1], decoded by the project's safe image reader
    (broken files and images over its pixel limit are refused with a DataError)."""
    from ..data import DataError
    from ..imagefiles import read_image
    if len(data) > max_bytes:
        raise DataError(f"upload too large ({len(data)} bytes > {max_bytes})")
    if not data:
        raise DataError("empty upload")
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "upload"
        p.write_bytes(data)
        try:
            x = read_image(p, tuple(shape))
        except Exception as e:  # noqa: BLE001  (any decoder failure is the upload's fault)
            msg = str(e).replace(str(p), "the upload")
            raise DataError(msg if msg.startswith("cannot read") else f"cannot read the upload: {msg}") from None
    return x.unsqueeze(0)


class ModelCache:
    """A few loaded generators, keyed by run folder and newest checkpoint (a new checkpoint
    reloads). Loading and inference are serialised by one lock: the CPU is shared anyway."""

    def __init__(self, size: int = 4, device: str = "cpu"):
        self.size = size
        self.device = device
        self._models: OrderedDict[tuple, tuple] = OrderedDict()
        self.lock = threading.Lock()
        self.loads = 0  # how many times a model was actually read from disk

    def get(self, run: Path) -> tuple:
        """(generator, panel) of a run's newest checkpoint."""
        from ..loading import load
        from ..rundir import RunDirError
        ckpts = list_checkpoints(run / CHECKPOINTS)
        if not ckpts:
            raise RunDirError(f"{run.name} has no checkpoint yet")
        key = (str(run), ckpts[-1].name)
        hit = self._models.pop(key, None)
        if hit is None:
            gen = load(run, device=self.device)
            hit = (gen, model_adapter(gen))
            self.loads += 1
        self._models[key] = hit
        while len(self._models) > self.size:
            self._models.popitem(last=False)
        return hit


def _int(params: dict, key: str, default: int, lo: int, hi: int) -> int:
    v = params.get(key, default)
    try:
        v = int(v)
    except (TypeError, ValueError):
        raise UsageError(f"{key} must be a whole number, got {v!r}") from None
    if not lo <= v <= hi:
        raise UsageError(f"{key} must be in {lo}..{hi}, got {v}")
    return v


def _opt_float(params: dict, key: str, lo: float, hi: float) -> float | None:
    v = params.get(key)
    if v in (None, ""):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise UsageError(f"{key} must be a number, got {v!r}") from None
    if not lo < v <= hi:
        raise UsageError(f"{key} must be in ({lo}, {hi}], got {v}")
    return v


def _label(params: dict, panel: Panel) -> int | None:
    if params.get("label") in (None, ""):
        return None
    k = panel.controls.get("classes", 0)
    if not k:
        raise UsageError("this model is not class-conditional")
    return _int(params, "label", 0, 0, k - 1)


def run_sample(panel: Panel, params: dict) -> bytes:
    if panel.sample is None:
        raise UsageError("this model does not sample from noise; upload an image to translate instead")
    n = _int(params, "n", panel.controls.get("default_n", 16), 1, max(MAX_SAMPLES, panel.controls.get("default_n", 0)))
    x = panel.sample(n, _int(params, "seed", 0, 0, 2**31 - 1), _label(params, panel),
                     _opt_float(params, "truncation", 0.0, 4.0) if panel.controls.get("truncation") else None)
    return to_png(x)


def run_interpolate(panel: Panel, params: dict) -> bytes:
    if panel.interpolate is None:
        raise UsageError("this model has no latent interpolation")
    steps = _int(params, "steps", 8, 2, MAX_INTERP_STEPS)
    x = panel.interpolate(_int(params, "seed_a", 0, 0, 2**31 - 1), _int(params, "seed_b", 1, 0, 2**31 - 1), steps,
                          _label(params, panel),
                          _opt_float(params, "truncation", 0.0, 4.0) if panel.controls.get("truncation") else None)
    return to_png(x, nrow=steps)


def run_translate(panel: Panel, data: bytes, direction: str, max_bytes: int) -> bytes:
    """The uploaded image and its translation side by side (input resized to the model's size)."""
    if panel.translate is None:
        raise UsageError("this model generates from noise; use sample instead")
    if direction not in panel.controls.get("directions", []):
        raise UsageError(f"direction must be one of {panel.controls.get('directions')}, got {direction!r}")
    x = decode_upload(data, panel.input_shape(direction), max_bytes)
    y = panel.translate(x, direction)
    if x.shape[1:] != y.shape[1:]:  # super-resolution or a channel change: show the input at the output's size
        x = torch.nn.functional.interpolate(x, size=y.shape[2:], mode="nearest")
        if x.shape[1] != y.shape[1]:
            x = x.expand(-1, y.shape[1], -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
    return to_png(torch.cat([x, y]), nrow=2)


__all__ = ["Panel", "model_adapter", "ModelCache", "run_sample", "run_interpolate", "run_translate",
           "decode_upload", "to_png"]
