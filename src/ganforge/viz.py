"""Pictures of samples: image grids, and scatter plots / histograms for toy data."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from .atomic import atomic_path


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None) -> None:
    """Save (N, C, H, W) images in [-1, 1] as one PNG grid."""
    from torchvision.utils import save_image  # imported when first drawing (the CLI starts faster)
    n = images.shape[0]
    nrow = nrow or max(1, int(round(n ** 0.5)))
    with atomic_path(path) as tmp:  # a full disk never leaves a truncated PNG under its name
        save_image(images.float().clamp(-1, 1), str(tmp), nrow=nrow, normalize=True, value_range=(-1, 1),
                   padding=2, pad_value=1.0)


def grid_tensor(images: Tensor, nrow: int) -> Tensor:
    from torchvision.utils import make_grid
    return make_grid(images.float().clamp(-1, 1), nrow=nrow, normalize=True, value_range=(-1, 1))


def _to_px(v: Tensor, lo: float, hi: float, size: int) -> Tensor:
    return ((v - lo) / (hi - lo) * (size - 1)).round()


def scatter_png(fake: Tensor, real: Tensor | None, path: str | Path, size: int = 400) -> None:
    """2-D samples as a scatter plot: real in light grey, generated in blue."""
    pts = [t for t in (fake, real) if t is not None]
    allp = torch.cat(pts).float()
    lo = float(allp.min()) - 0.1 * float(allp.abs().max() + 1e-3)
    hi = float(allp.max()) + 0.1 * float(allp.abs().max() + 1e-3)
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    for t, colour, r in ((real, (190, 190, 190), 2), (fake, (30, 80, 220), 1)):
        if t is None:
            continue
        xs = _to_px(t[:, 0].float(), lo, hi, size)
        ys = size - 1 - _to_px(t[:, 1].float(), lo, hi, size)
        for x, y in zip(xs.tolist(), ys.tolist()):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    with atomic_path(path) as tmp:
        img.save(str(tmp))


def histogram_png(fake: Tensor, real: Tensor | None, path: str | Path, bins: int = 80,
                  size: tuple[int, int] = (480, 240)) -> None:
    """1-D samples as two overlaid histograms: real in grey, generated in blue."""
    w, h = size
    allv = torch.cat([t.flatten() for t in (fake, real) if t is not None]).float()
    lo, hi = float(allv.min()), float(allv.max()) + 1e-6
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    hists = [(torch.histc(t.flatten().float(), bins, lo, hi), c)
             for t, c in ((real, (190, 190, 190)), (fake, (30, 80, 220))) if t is not None]
    top = max(float(hh.max() / hh.sum()) for hh, _ in hists)
    bw = w / bins
    for hh, colour in hists:
        p = hh / hh.sum()
        for i, v in enumerate(p.tolist()):
            bar = v / top * (h - 10)
            draw.rectangle([i * bw + 1, h - bar, (i + 1) * bw - 1, h], outline=colour)
    with atomic_path(path) as tmp:
        img.save(str(tmp))


def save_samples(samples: Tensor, path: str | Path, real: Tensor | None = None,
                 nrow: int | None = None) -> None:
    """The right picture for the data kind: a grid for images, a plot for vectors."""
    if samples.dim() == 4:
        save_grid(samples, path, nrow)
    elif samples.shape[1] == 1:
        histogram_png(samples, real, path)
    else:
        scatter_png(samples[:, :2], None if real is None else real[:, :2], path)


def as_image_like(img: Tensor, like: Tensor) -> Tensor:
    """``img`` resized (nearest) and converted to ``like``'s channels, to sit beside it in a grid."""
    import torch.nn.functional as F
    img = img.to(like.device, like.dtype)
    if img.shape[1] != like.shape[1]:
        img = img.mean(1, keepdim=True).expand(-1, like.shape[1], -1, -1) if like.shape[1] in (1, 3) else img
    if img.shape[2:] != like.shape[2:]:
        img = F.interpolate(img, size=like.shape[2:], mode="nearest")
    return img
