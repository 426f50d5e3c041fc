"""Tools that read a trained run: latent interpolation, image-to-image translation and upscaling
of files, and labelled synthetic datasets from class-conditional models.

Each function takes a :class:`ganforge.api.Generator` (from :func:`ganforge.load`) and plain
paths, so the command line stays a thin wrapper.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .api import UsageError
from .data import DataError

MAX_INPUT_PIXELS = 64_000_000  # larger input files are refused (decompression bombs)


# -- interpolation -----------------------------------------------------------------------------

def lerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """(1 - t) z0 + t z1 for every t: (n,) -> (n, *z0.shape)."""
    t = t.reshape(-1, *([1] * z0.dim()))
    return (1 - t) * z0 + t * z1


def slerp(z0: Tensor, z1: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """Spherical interpolation along the great circle through z0 and z1, row by row (the last
    dimension is the vector); falls back to lerp when they are (anti)parallel."""
    a = z0 / z0.norm(dim=-1, keepdim=True).clamp_min(eps)
    b = z1 / z1.norm(dim=-1, keepdim=True).clamp_min(eps)
    omega = torch.acos((a * b).sum(-1).clamp(-1 + eps, 1 - eps))  # (...,)
    so = torch.sin(omega)
    t = t.reshape(-1, *([1] * z0.dim()))
    w0 = torch.sin((1 - t) * omega.unsqueeze(-1)) / so.unsqueeze(-1)
    w1 = torch.sin(t * omega.unsqueeze(-1)) / so.unsqueeze(-1)
    out = w0 * z0 + w1 * z1
    flat = (so.abs() < 1e-4).unsqueeze(-1)
    return torch.where(flat, lerp(z0, z1, t), out)


@torch.no_grad()
def interpolation_frames(g, *, steps: int = 8, rows: int = 4, seed: int = 0, mode: str = "slerp",
                         classes: tuple[int, int] | None = None, truncation: float | None = None) -> Tensor:
    """Images (rows, steps, C, H, W): each row walks from one random latent to another; for a
    class-conditional model with ``classes=(a, b)`` the latent stays fixed and the class
    embedding moves from a to b (the nets see a soft label), and with ``classes=None`` a
    conditional model keeps one random class per row."""
    if steps < 2:
        raise UsageError(f"steps must be >= 2, got {steps}")
    if mode not in ("slerp", "lerp"):
        raise UsageError(f"mode must be slerp or lerp, got {mode!r}")
    gen = torch.Generator().manual_seed(int(seed))
    t = torch.linspace(0, 1, steps)
    if classes is not None:
        if not g.conditional:
            raise UsageError("--classes needs a class-conditional model")
        a, b = g.labels(2, list(classes)).tolist()
        z = g.latent(rows, truncation=truncation, generator=gen)  # (rows, z)
        zs = z.unsqueeze(1).expand(rows, steps, -1).reshape(rows * steps, -1)
        ya = torch.nn.functional.one_hot(torch.tensor(a), g.num_classes).float()
        yb = torch.nn.functional.one_hot(torch.tensor(b), g.num_classes).float()
        ys = lerp(ya, yb, t).unsqueeze(0).expand(rows, -1, -1).reshape(rows * steps, -1)
        x = g(zs, ys)
    else:
        z0 = g.latent(rows, truncation=truncation, generator=gen)
        z1 = g.latent(rows, truncation=truncation, generator=gen)
        path = (slerp if mode == "slerp" else lerp)(z0, z1, t)  # (steps, rows, z)
        zs = path.transpose(0, 1).reshape(rows * steps, -1)
        y = g.labels(rows, None, generator=gen)
        ys = None if y is None else y.repeat_interleave(steps)
        x = g(zs, ys)
    return x.reshape(rows, steps, *x.shape[1:])


def save_strip_and_gif(frames: Tensor, png: Path, gif: Path, duration_ms: int = 120) -> None:
    """The (rows, steps, ...) frames as one PNG strip (a row per walk) and an animated GIF that
    plays the walk forwards and back (a frame shows every row at one step)."""
    from PIL import Image
    from torchvision.utils import make_grid

    from .viz import save_grid
    rows, steps = frames.shape[:2]
    save_grid(frames.flatten(0, 1), png, nrow=steps)
    images = []
    for s in list(range(steps)) + list(range(steps - 2, 0, -1)):
        grid = make_grid(frames[:, s].float().clamp(-1, 1), nrow=rows, normalize=True, value_range=(-1, 1),
                         padding=2, pad_value=1.0)
        arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        images.append(Image.fromarray(arr))
    images[0].save(gif, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


# -- files in, files out -------------------------------------------------------------------------

def input_files(inputs: list[str]) -> list[Path]:
    """Files named on the command line; folders contribute their images (sorted)."""
    from .data.images import list_image_files
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += list_image_files(p)
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"input not found: {p}")
    if not files:
        raise DataError(f"no images in {', '.join(inputs)}")
    return files


def read_image(path: Path, shape: tuple) -> Tensor:
    """One file -> (C, H, W) float in [-1, 1] with the model's input channels and size (the
    shorter side resized, then centre-cropped)."""
    from .data.images import _decode
    c, h, w = shape
    try:
        im = _decode(path, h, MAX_INPUT_PIXELS)
    except Exception as e:  # noqa: BLE001  (any unreadable file is a user-facing error)
        raise DataError(f"cannot read {path}: {e}") from None
    im = im.convert("L" if c == 1 else "RGB")
    a = torch.from_numpy(np.asarray(im).copy())
    a = a.unsqueeze(0) if a.dim() == 2 else a.permute(2, 0, 1)
    return a.float().div(127.5).sub(1.0)


def write_image(x: Tensor, path: Path) -> None:
    from torchvision.utils import save_image
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(x.float().add(1).div(2).clamp(0, 1), str(path))


@torch.no_grad()
def translate_files(g, inputs: list[str], out: str | Path, *, direction: str = "ab",
                    side_by_side: bool = False) -> list[Path]:
    """Run an image-to-image model on files; outputs keep the input names (as PNG) in ``out``."""
    out = Path(out)
    files = input_files(inputs)
    in_shape = g.input_shape(direction)
    written = []
    for i in range(0, len(files), 32):
        chunk = files[i:i + 32]
        x = torch.stack([read_image(p, in_shape) for p in chunk])
        y = g.translate(x, direction=direction)
        for p, a, b in zip(chunk, x, y):
            dest = out / (p.stem + ".png")
            if side_by_side:
                from .objective import as_image_like
                a = as_image_like(a[None], b[None])[0]
                b = torch.cat([a, b], dim=2)
            write_image(b, dest)
            written.append(dest)
    return written


# -- synthetic labelled data ------------------------------------------------------------------------

@torch.no_grad()
def synthesize(g, per_class: int, out: str | Path, *, seed: int = 0, truncation: float | None = None,
               class_names: list[str] | None = None, batch_size: int = 256) -> dict[str, int]:
    """``per_class`` images of every class in an ImageFolder layout: ``out/<k>-<name>/NNNNN.png``."""
    if not g.conditional:
        raise UsageError("synthesize needs a class-conditional model (train with --set model.conditional=true)")
    if per_class < 1:
        raise UsageError(f"per_class must be >= 1, got {per_class}")
    out = Path(out)
    counts = {}
    for k in range(g.num_classes):
        name = f"{k}-{class_names[k]}" if class_names and k < len(class_names) else f"{k}"
        name = name.replace("/", "-").replace(" ", "_")
        x = g.sample(per_class, seed=seed * 1000 + k, labels=k, truncation=truncation, batch_size=batch_size)
        for i, img in enumerate(x):
            write_image(img, out / name / f"{i:05d}.png")
        counts[name] = per_class
    return counts


__all__ = ["lerp", "slerp", "interpolation_frames", "save_strip_and_gif", "translate_files", "synthesize",
           "input_files", "read_image"]
