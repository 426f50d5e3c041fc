"""``ganforge truncation``: a truncation sweep of a style-based generator in one picture.

Row r shows one latent at every psi of the sweep (columns, in the order given): its w is moved
towards the tracked average w as ``w_avg + psi (w - w_avg)`` (psi 1: the latent's own image, psi 0:
the average w's image, the same in every row). Latents are drawn from one seeded generator like
``sample``'s (the same seed gives the same z: ``sample(rows, seed=s)``'s latents), then, for
class-conditional models, a class per row. Every image uses G's constant noise, so the cells of a
row differ only by psi.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .errors import UsageError

DEFAULT_PSI = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)  # the sweep of the StyleGAN papers' truncation figures


def parse_psi_list(text: str) -> tuple[float, ...]:
    """``"1,0.5,0"`` -> (1.0, 0.5, 0.0); a one-line UsageError for anything else."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) for v in values):
        raise UsageError(f"--psi takes comma-separated numbers like 1,0.7,0.4,0, got {text!r}")
    return values


@torch.no_grad()
def truncation_grid(g, *, psi=DEFAULT_PSI, rows: int = 4, seed: int = 0) -> Tensor:
    """Images (rows * len(psi), C, H, W) in row-major order (row = latent, column = psi) for a
    loaded style-based model ``g`` (:class:`~ganforge.trained.TrainedGenerator`)."""
    g.task.require("truncation")
    if not g.style_based:
        raise UsageError("a truncation sweep needs a style-based generator (e.g. the stylegan2 preset); "
                         "other models take `ganforge sample --truncation` (a truncated normal z)")
    if rows < 1:
        raise UsageError(f"--rows must be >= 1, got {rows}")
    psi = [float(p) for p in psi]
    if not psi:
        raise UsageError("--psi needs at least one value")
    net = g.net
    gen = torch.Generator().manual_seed(int(seed))
    z = g.latent(rows, generator=gen).to(g.device)  # (rows, z_dim)
    y = g.labels(rows, None, generator=gen)
    y = y.to(g.device) if y is not None else None
    # (rows, P, num_ws, w_dim): every latent at every psi, in one batch
    ws = torch.stack([net.mapping(z, y, p, update_w_avg=False) for p in psi], dim=1)
    x = net.synthesize(ws.flatten(0, 1), noise_mode="const")  # (rows * P, C, H, W)
    return x.cpu()


__all__ = ["DEFAULT_PSI", "parse_psi_list", "truncation_grid"]
