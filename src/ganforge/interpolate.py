"""Latent interpolation: walks between latents (slerp or lerp) or between classes, saved as a
PNG strip and an animated GIF. Works on any noise-to-sample :class:`~ganforge.trained.TrainedGenerator`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import UsageError


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
    conditional model keeps one random class per row. ``truncation`` is psi in w for style-based
    models (the walk is in z, each point truncated in w) and a truncated z otherwise."""
    if steps < 2:
        raise UsageError(f"steps must be >= 2, got {steps}")
    if mode not in ("slerp", "lerp"):
        raise UsageError(f"mode must be slerp or lerp, got {mode!r}")
    gen = torch.Generator().manual_seed(int(seed))
    t = torch.linspace(0, 1, steps)
    # style-based models truncate w towards its average (psi); others draw a truncated z
    psi = truncation if g.style_based else None
    truncation = None if g.style_based else truncation
    if classes is not None:
        if not g.conditional:
            raise UsageError("--classes needs a class-conditional model")
        a, b = g.labels(2, list(classes)).tolist()
        z = g.latent(rows, truncation=truncation, generator=gen)  # (rows, z)
        zs = z.unsqueeze(1).expand(rows, steps, -1).reshape(rows * steps, -1)
        ya = torch.nn.functional.one_hot(torch.tensor(a), g.num_classes).float()
        yb = torch.nn.functional.one_hot(torch.tensor(b), g.num_classes).float()
        ys = lerp(ya, yb, t).unsqueeze(0).expand(rows, -1, -1).reshape(rows * steps, -1)
        x = g(zs, ys, psi=psi, fixed_noise=True)
    else:
        z0 = g.latent(rows, truncation=truncation, generator=gen)
        z1 = g.latent(rows, truncation=truncation, generator=gen)
        path = (slerp if mode == "slerp" else lerp)(z0, z1, t)  # (steps, rows, z)
        zs = path.transpose(0, 1).reshape(rows * steps, -1)
        y = g.labels(rows, None, generator=gen)
        ys = None if y is None else y.repeat_interleave(steps)
        x = g(zs, ys, psi=psi, fixed_noise=True)
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
    from .atomic import atomic_path
    with atomic_path(gif) as tmp:
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


__all__ = ["lerp", "slerp", "interpolation_frames", "save_strip_and_gif"]
