"""Image-to-image data from a user's folders: ``paired:PATH`` (aligned pairs) and
``unpaired:PATH`` (two domains, the CycleGAN layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import DataError
from torch import Tensor

from .folders import (IMAGE_EXTENSIONS, MAX_PIXELS, PROGRESS_MIN_FILES, SkippedFile, _decode, folder_source,
                     list_image_files, open_image, skip_reason)
from .pairs import PairedSource, UnpairedSource, _shape
from .registry import DATASETS, Dataset, Split


def _fit(im, size: int):
    """Shorter side to ``size`` (bicubic, antialiased), then the centre square."""
    from PIL import Image, ImageOps

    return ImageOps.fit(im, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))


def _stack(images: list, channels: int) -> Tensor:
    """PIL images of one size -> uint8 ``(N, C, H, W)``; channels 0 = 1 if all are gray, else 3."""
    if channels == 0:
        channels = 1 if all(im.mode == "L" for im in images) else 3
    mode = "L" if channels == 1 else "RGB"
    w, h = images[0].size
    out = torch.empty((len(images), channels, h, w), dtype=torch.uint8)
    for i, im in enumerate(images):
        a = np.asarray(im.convert(mode) if im.mode != mode else im)
        out[i] = torch.from_numpy(a.reshape(h, w, channels).copy()).permute(2, 0, 1)
    return out


def _key(path: Path, root: Path) -> str:
    """How A and B files are matched: the path under A/ or B/ without its suffix."""
    return path.relative_to(root).with_suffix("").as_posix()


def _keyed(folder: Path) -> dict[str, Path]:
    files = list_image_files(folder)
    if not files:
        raise DataError(f"no image files ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) under {folder}")
    out: dict[str, Path] = {}
    for f in files:
        k = _key(f, folder)
        if k in out:
            raise DataError(f"two images named {k} in {folder} ({out[k].name}, {f.name}): pairs are "
                            f"matched by name, so names must be unique")
        out[k] = f
    return out


def _few(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _check_sizes(pairs: list[tuple[str, object, object]]) -> None:
    """Without data.image_size, every input must have one size and every target one size; a
    target is as large as its input or an integer multiple of it (super-resolution)."""
    name0, a0, b0 = pairs[0]
    for name, a, b in pairs:
        (wa, ha), (wb, hb) = a.size, b.size
        if (wa, ha) != a0.size or (wb, hb) != b0.size:
            raise DataError(f"pairs differ in size ({name}: input {wa}x{ha}, target {wb}x{hb}; {name0}: "
                            f"input {a0.size[0]}x{a0.size[1]}, target {b0.size[0]}x{b0.size[1]}); "
                            f"set data.image_size to resize them all")
        if wb % wa or hb % ha or wb // wa != hb // ha:
            raise DataError(f"{name}: input {wa}x{ha} and target {wb}x{hb} differ in size (and the target "
                            f"is no integer upscale of the input); set data.image_size to resize both")


def paired_folder_source(cfg, path: str | Path, *, max_pixels: int = MAX_PIXELS) -> PairedSource:
    """Aligned pairs from a folder (``data.name = paired:PATH``), in one of two layouts:

    - ``PATH/A/`` (inputs) and ``PATH/B/`` (targets) holding files of matching names (matched by
      the path under A/ or B/ without the suffix: ``A/x/01.png`` goes with ``B/x/01.jpg``);
    - otherwise every image under ``PATH`` (recursively) is one pair side by side, the pix2pix
      format: width = 2 x height, the left half the input A, the right half the target B.

    Decoding as in :func:`~ganforge.data.folders.folder_source` (modes, transparency, EXIF;
    unreadable files are skipped, listed in ``skipped`` and counted in the description; a pair
    with an unreadable file is left out). ``cfg.data.channels`` 0 keeps each side gray when all
    of its images are gray, else RGB. ``cfg.data.image_size`` > 0: both sides are resized
    (shorter side, bicubic) and centre-cropped to it; 0: images keep their size, which must then
    agree (every input one size, every target one size, equal to the input's or an integer
    multiple of it, for super-resolution pairs).

    Raises :class:`DataError` for a missing or empty folder, names in A without a match in B (or
    the reverse), sizes that disagree without ``image_size``, side-by-side images whose width is
    not twice their height, or when no pair can be read.
    """
    from tqdm.auto import tqdm

    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"paired image folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"not a folder: {root} (data.name=paired:PATH needs a folder)")
    size = cfg.data.image_size
    skipped: list[SkippedFile] = []
    pairs: list[tuple[str, object, object]] = []  # (name, input image, target image)
    files: list = []
    show = getattr(getattr(cfg, "train", None), "progress", True)

    if (root / "A").is_dir() or (root / "B").is_dir():
        layout = "A/ -> B/"
        for side in ("A", "B"):
            if not (root / side).is_dir():
                raise DataError(f"{root} has {'B' if side == 'A' else 'A'}/ but no {side}/ folder: paired "
                                f"folders hold inputs in A/ and targets in B/ (or side-by-side A|B images)")
        in_a, in_b = _keyed(root / "A"), _keyed(root / "B")
        only_a = sorted(set(in_a) - set(in_b))
        only_b = sorted(set(in_b) - set(in_a))
        if only_a or only_b:
            parts = []
            if only_a:
                parts.append(f"{len(only_a)} in {root / 'A'} have no match in B/ ({_few(only_a)})")
            if only_b:
                parts.append(f"{len(only_b)} in {root / 'B'} have no match in A/ ({_few(only_b)})")
            raise DataError(f"unmatched images: {'; '.join(parts)} (pairs are matched by file name)")
        keys = sorted(in_a)
        for k in tqdm(keys, desc=f"decoding {root.name or root}", unit="pair",
                      disable=not show or len(keys) <= PROGRESS_MIN_FILES, leave=False):
            ims = []
            for f in (in_a[k], in_b[k]):
                try:
                    ims.append(_decode(f, size, max_pixels) if size else open_image(f, max_pixels))
                except Exception as e:  # PIL raises many types on bad data; skip the pair, keep a reason
                    skipped.append(SkippedFile(f, skip_reason(e)))
            if len(ims) == 2:
                pairs.append((k, ims[0], ims[1]))
                files.append((in_a[k], in_b[k]))
        n_files = 2 * len(keys)
    else:
        layout = "A|B side by side"
        found = list_image_files(root)
        if not found:
            raise DataError(f"no image files ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) under {root}")
        for f in tqdm(found, desc=f"decoding {root.name or root}", unit="img",
                      disable=not show or len(found) <= PROGRESS_MIN_FILES, leave=False):
            try:
                im = open_image(f, max_pixels)
            except Exception as e:
                skipped.append(SkippedFile(f, skip_reason(e)))
                continue
            w, h = im.size
            if w != 2 * h:
                raise DataError(f"{f} is {w}x{h}: side-by-side pairs need width = 2 x height (input A on the "
                                f"left, target B on the right); or put inputs in {root / 'A'} and targets "
                                f"in {root / 'B'}")
            a, b = im.crop((0, 0, h, h)), im.crop((h, 0, w, h))
            if size:
                a, b = _fit(a, size), _fit(b, size)
            pairs.append((f.relative_to(root).as_posix(), a, b))
            files.append(f)
        n_files = len(found)
    if not pairs:
        first = skipped[0]
        raise DataError(f"none of the {n_files} image files under {root} could be read "
                        f"(e.g. {first.path.name}: {first.reason})")
    if not size:
        _check_sizes(pairs)
    inputs = _stack([a for _, a, _ in pairs], cfg.data.channels)
    targets = _stack([b for _, _, b in pairs], cfg.data.channels)
    desc = (f"paired folder {root} ({layout}): {len(pairs)} pairs, input {_shape(inputs)} -> target "
            f"{_shape(targets)}" + (f", {len(skipped)} unreadable files skipped" if skipped else ""))
    return PairedSource(targets, inputs, seed=cfg.seed, description=desc, files=files, skipped=skipped)


def unpaired_folder_source(cfg, path: str | Path, *, split: str = "train",
                           max_pixels: int = MAX_PIXELS) -> UnpairedSource:
    """Two unaligned image sets (``data.name = unpaired:PATH``), the CycleGAN layout:
    ``PATH/trainA/`` (domain A, the inputs) and ``PATH/trainB/`` (domain B, the data);
    ``split="test"`` reads testA/ and testB/.

    Each domain is read by :func:`~ganforge.data.folders.folder_source`: recursively, resized and
    centre-cropped to ``cfg.data.image_size`` (0 = 64), channels per domain, unreadable files
    skipped (``skipped`` lists those of both domains).
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"unpaired image folder not found: {root}")
    folders = {d: root / f"{split}{d}" for d in ("A", "B")}
    for d, folder in folders.items():
        if not folder.is_dir():
            raise DataError(f"{root} has no {folder.name}/ folder: unpaired data needs {split}A/ (domain A, "
                            f"the inputs) and {split}B/ (domain B)")
    src_a = folder_source(cfg, folders["A"], max_pixels=max_pixels)
    src_b = folder_source(cfg, folders["B"], max_pixels=max_pixels)
    skipped = src_a.skipped + src_b.skipped
    desc = (f"unpaired folder {root}: A {len(src_a)} images {_shape(src_a.data)}, B {len(src_b)} images "
            f"{_shape(src_b.data)}" + (f", {len(skipped)} unreadable files skipped" if skipped else ""))
    return UnpairedSource(src_b.data, src_a.data, seed=cfg.seed, description=desc, skipped=skipped)


__all__ = ["paired_folder_source", "unpaired_folder_source"]


def _folder_cfg(image_size: int, channels: int):
    from ..config import Config
    cfg = Config()
    cfg.data.image_size, cfg.data.channels, cfg.train.progress = image_size, channels, False
    return cfg


def _paired_folder_split(path: str, split: str, *, root=None, image_size: int = 0, channels: int = 0,
                         limit: int = 0, download: bool = False) -> Split:
    """A paired folder's own pairs (it has no separate test split)."""
    src = paired_folder_source(_folder_cfg(image_size, channels), path)
    n = limit or len(src)
    return Split(src.data[:n], None, src.inputs[:n])


def _unpaired_folder_split(path: str, split: str, *, root=None, image_size: int = 0, channels: int = 0,
                           limit: int = 0, download: bool = False) -> Split:
    """testA/ + testB/ when the folder has them (else trainA/ + trainB/): B the targets, A the inputs."""
    has_split = (Path(path).expanduser() / f"{split}A").is_dir()
    src = unpaired_folder_source(_folder_cfg(image_size, channels), path, split=split if has_split else "train")
    n = limit or max(len(src.b), len(src.a))
    return Split(src.b.data[:n], None, src.a.data[:n])


DATASETS.register("paired")(Dataset(
    build=lambda cfg, path: paired_folder_source(cfg, path), task="paired", scheme=True, split=_paired_folder_split,
    help="aligned pairs: PATH/A/ + PATH/B/ with matching names, or A|B side-by-side images"))
DATASETS.register("unpaired")(Dataset(
    build=lambda cfg, path: unpaired_folder_source(cfg, path), task="unpaired", scheme=True,
    split=_unpaired_folder_split, help="two unaligned image sets: PATH/trainA/ and PATH/trainB/ (CycleGAN layout)"))
