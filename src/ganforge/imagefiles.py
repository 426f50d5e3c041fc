"""Image files in, image files out: running an image-to-image model on a user's files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import DataError
from .viz import as_image_like

MAX_INPUT_PIXELS = 64_000_000  # larger input files are refused (decompression bombs)


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
                a = as_image_like(a[None], b[None])[0]
                b = torch.cat([a, b], dim=2)
            write_image(b, dest)
            written.append(dest)
    return written


__all__ = ["input_files", "read_image", "translate_files", "write_image"]
