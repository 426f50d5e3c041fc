"""Image files in, image files out: running an image-to-image model on a user's files.

Where outputs go (``translate_files``): each input keeps its path relative to the input folder
(one folder given) or to the folder the inputs have in common (several given), so ``a/x.png``
and ``b/x.png`` stay apart and sub-folders are kept. PNG inputs keep their names; any other
suffix stays in the name and ``.png`` is added (``x.jpg`` -> ``x.jpg.png``), so ``x.png`` and
``x.jpg`` never overwrite each other. Unreadable inputs are skipped with a reason, as training
does. A one-channel model writes grayscale PNGs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .atomic import atomic_path
from .errors import DataError
from .viz import as_image_like

MAX_INPUT_PIXELS = 64_000_000  # larger input files are refused (decompression bombs)
SHOW_SKIPPED = 5  # skipped files named one by one in messages; the rest are counted
CHUNK = 32  # images translated per batch


def input_files(inputs: list[str]) -> list[Path]:
    """Files named on the command line; folders contribute their images (sorted, recursively)."""
    return [f for f, _ in _inputs_with_names(inputs)]


def _inputs_with_names(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(file, its path relative to the inputs' base), each file once."""
    from .data.folders import list_image_files
    items = [Path(i) for i in inputs]
    for p in items:
        if not p.exists():
            raise DataError(f"input not found: {p}")
    if len(items) == 1 and items[0].is_dir():
        base = items[0].resolve()
    else:  # the folder the inputs have in common
        base = Path(os.path.commonpath([(p.resolve() if p.is_dir() else p.resolve().parent) for p in items]))
    seen, out = set(), []
    for p in items:
        for f in (list_image_files(p) if p.is_dir() else [p]):
            r = f.resolve()
            if r not in seen:
                seen.add(r)
                out.append((f, r.relative_to(base)))
    if not out:
        raise DataError(f"no images in {', '.join(inputs)}")
    return out


def output_name(rel: Path) -> Path:
    """Where an input goes, relative to the output folder (see the module's docstring)."""
    return rel if rel.suffix == ".png" else rel.with_name(rel.name + ".png")


def read_image(path: Path, shape: tuple) -> Tensor:
    """One file -> (C, H, W) float in [-1, 1] with the model's input channels and size (the
    shorter side resized, then centre-cropped)."""
    from .data.folders import skip_reason
    try:
        return _read(path, shape)
    except Exception as e:  # noqa: BLE001  (any unreadable file is a user-facing error)
        raise DataError(f"cannot read {path}: {skip_reason(e)}") from None


def _read(path: Path, shape: tuple) -> Tensor:
    """:func:`read_image`, raising whatever the decoder raises."""
    from .data.folders import _decode
    c, h, w = shape
    im = _decode(path, h, MAX_INPUT_PIXELS).convert("L" if c == 1 else "RGB")
    a = torch.from_numpy(np.asarray(im).copy())
    a = a.unsqueeze(0) if a.dim() == 2 else a.permute(2, 0, 1)
    return a.float().div(127.5).sub(1.0)


def write_image(x: Tensor, path: Path) -> None:
    """(C, H, W) in [-1, 1] -> a PNG: grayscale for one channel, RGB for three (written to a
    temporary name, then renamed)."""
    from PIL import Image
    a = x.detach().float().cpu().add(1).div(2).clamp(0, 1).mul(255).round().to(torch.uint8)
    arr = a[0].numpy() if a.shape[0] == 1 else a[:3].permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(arr, mode="L" if a.shape[0] == 1 else "RGB").save(tmp, format="PNG")


@dataclass
class Translated:
    """What :func:`translate_files` did: files written, and inputs skipped with a reason."""
    written: list[Path] = field(default_factory=list)
    skipped: list = field(default_factory=list)  # SkippedFile(path, reason)


def describe_skipped(skipped: list, what: str = "unreadable files skipped") -> list[str]:
    """Lines naming the first few skipped files with their reasons, then a count of the rest."""
    if not skipped:
        return []
    lines = [f"{len(skipped)} {what}:"] + [f"  {s.path}: {s.reason.replace(f' {str(s.path)!r}', '')}"
                                             for s in skipped[:SHOW_SKIPPED]]
    if len(skipped) > SHOW_SKIPPED:
        lines.append(f"  ... and {len(skipped) - SHOW_SKIPPED} more")
    return lines


@torch.no_grad()
def translate_files(g, inputs: list[str], out: str | Path, *, direction: str = "ab",
                    side_by_side: bool = False, progress: bool | None = None) -> Translated:
    """Run an image-to-image model on files into ``out`` (names: see the module's docstring)."""
    from tqdm.auto import tqdm

    from .data.folders import PROGRESS_MIN_FILES, SkippedFile, skip_reason
    out = Path(out)
    pairs = _inputs_with_names(inputs)
    dests: dict[Path, Path] = {}
    for f, rel in pairs:
        dest = out / output_name(rel)
        if dest in dests:
            raise DataError(f"{f} and {dests[dest]} would both be written to {dest}; rename one of them")
        dests[dest] = f
    in_shape = g.input_shape(direction)
    done = Translated()
    show = len(pairs) > PROGRESS_MIN_FILES if progress is None else progress
    with tqdm(total=len(pairs), desc="translating", unit="img", disable=not show, leave=False) as bar:
        for i in range(0, len(pairs), CHUNK):
            xs, names = [], []
            for f, rel in pairs[i:i + CHUNK]:
                try:
                    xs.append(_read(f, in_shape))
                    names.append(out / output_name(rel))
                except Exception as e:  # noqa: BLE001  (PIL raises many types on bad data; skip, keep a reason)
                    done.skipped.append(SkippedFile(f, skip_reason(e)))
            if xs:
                x = torch.stack(xs)
                y = g.translate(x, direction=direction)
                for dest, a, b in zip(names, x, y):
                    if side_by_side:
                        a = as_image_like(a[None], b[None])[0]
                        b = torch.cat([a, b], dim=2)
                    write_image(b, dest)
                    done.written.append(dest)
            bar.update(len(pairs[i:i + CHUNK]))
    if not done.written:
        example = describe_skipped(done.skipped[:1])[1].strip()
        raise DataError(f"none of the {len(pairs)} inputs could be read (e.g. {example})")
    return done


__all__ = ["Translated", "describe_skipped", "input_files", "output_name", "read_image", "translate_files",
           "write_image"]
