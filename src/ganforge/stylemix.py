"""``ganforge style-mix``: the style-mixing grid of the StyleGAN papers (figure 3 of Karras et al. 2019).

The grid has ``rows + 1`` rows and ``cols + 1`` columns: the top row shows the column sources, the
left column the row sources (the top-left cell is blank), and cell (r, c) is synthesised from the
ws of row source r for the layers before ``split`` (coarse styles: pose, shape) and from column
source c for the layers from ``split`` on (fine styles: texture, colour). Sources are drawn from
one seeded generator: the row latents first, then the column latents (then, for class-conditional
models, a class per source). Every image uses G's constant noise, so only the styles differ.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .errors import UsageError


def default_split(num_ws: int) -> int:
    """The first half of the layers (the lower resolutions) are the coarse styles."""
    return max(1, num_ws // 2)


@torch.no_grad()
def style_mix_grid(g, *, rows: int = 4, cols: int = 4, seed: int = 0, split: int | None = None,
                   truncation: float | None = None) -> tuple[Tensor, int]:
    """(images ((rows + 1) * (cols + 1), C, H, W) in row-major order, the split used) for a loaded
    style-based model ``g`` (:class:`~ganforge.trained.TrainedGenerator`)."""
    from .nets.stylegan2 import mix_styles
    g.task.require("style-mix")
    if not g.style_based:
        raise UsageError("style mixing needs a style-based generator (e.g. the stylegan2 preset)")
    if rows < 1 or cols < 1:
        raise UsageError(f"--rows and --cols must be >= 1, got {rows} and {cols}")
    net = g.net
    num_ws = net.num_ws
    split = default_split(num_ws) if split is None else split
    if not 1 <= split < num_ws:
        raise UsageError(f"--split must be in 1..{num_ws - 1} (this generator has {num_ws} style layers), got {split}")
    gen = torch.Generator().manual_seed(int(seed))
    z = g.latent(rows + cols, generator=gen).to(g.device)
    y = g.labels(rows + cols, None, generator=gen)
    y = y.to(g.device) if y is not None else None
    psi = 1.0 if truncation is None else float(truncation)
    ws = net.mapping(z, y, psi, update_w_avg=False)  # (rows + cols, num_ws, w_dim)
    row_ws, col_ws = ws[:rows], ws[rows:]

    def synth(w: Tensor) -> Tensor:
        return net.synthesize(w, noise_mode="const").cpu()

    sources = synth(ws)  # (rows + cols, C, H, W)
    cells = synth(mix_styles(row_ws, col_ws, range(split, num_ws)))  # (rows * cols, ...)
    blank = torch.ones_like(sources[:1])  # white (images lie in [-1, 1])
    out = [blank, sources[rows:]]
    for r in range(rows):
        out += [sources[r:r + 1], cells[r * cols:(r + 1) * cols]]
    return torch.cat(out), split


__all__ = ["default_split", "style_mix_grid"]
