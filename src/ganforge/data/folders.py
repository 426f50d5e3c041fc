"""Folders of image files (``data.name = folder:PATH``): decoding, and the training source.

Small folders are decoded once into memory; large ones (or ``data.cache=on``) once into a
memory-mapped cache file that training reads batch by batch (:mod:`.folder_cache`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .base import DataError, InMemorySource

# -- folders of images -----------------------------------------------------------------------

#: File suffixes read from folders (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
#: ``data.image_size`` 0 means this size for folders (they have no size of their own).
DEFAULT_FOLDER_SIZE = 64
#: Images with more pixels than this are skipped (decompression-bomb guard; 8192 x 8192).
MAX_PIXELS = 8192 * 8192
#: A progress bar is shown when a folder has more files than this.
PROGRESS_MIN_FILES = 256

_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


class SkippedFile(NamedTuple):
    path: Path
    reason: str


def _to_8bit_gray(im):
    """Modes I;16*, I and F (16/32-bit gray) -> 'L'. 16-bit values are scaled by 255/65535."""
    from PIL import Image

    a = np.asarray(im)
    if im.mode.startswith("I;16") or (im.mode == "I" and a.size and a.max() > 255):
        a = a.astype(np.float64) * (255.0 / 65535.0)
    elif im.mode == "F" and a.size and np.nanmax(a) <= 1.0:
        a = a.astype(np.float64) * 255.0  # float images in [0, 1]
    a = np.nan_to_num(a.astype(np.float64)).round().clip(0, 255).astype(np.uint8)
    return Image.fromarray(a)  # 2-D uint8 -> mode L


def _normalise_mode(im):
    """Any PIL image -> ('L' or 'RGB' image). Transparency is composited on white."""
    from PIL import Image

    if im.mode == "P" or im.mode == "PA":
        im = im.convert("RGBA")  # palette (with or without transparency)
    if im.mode in ("RGBA", "RGBa", "LA", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba).convert("RGB" if "RGB" in im.mode else "L")
        return im
    if im.mode in ("L", "RGB"):
        return im
    if im.mode == "1":
        return im.convert("L")
    if im.mode in _GRAY_MODES:  # I;16*, I, F
        return _to_8bit_gray(im)
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...


def open_image(path: Path, max_pixels: int, draft: int = 0):
    """One file -> ('L' or 'RGB') PIL image at its own size, EXIF-oriented; raises on anything
    broken or larger than ``max_pixels``. ``draft`` lets JPEGs decode at a reduced scale >= it."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ValueError(f"too large ({w}x{h} > {max_pixels} pixels)")
            if draft and im.format == "JPEG":
                im.draft(im.mode, (draft, draft))
            im.load()
            try:
                im = ImageOps.exif_transpose(im)  # camera orientation
            except Exception:  # unreadable EXIF: keep the pixels as stored
                pass
            return _normalise_mode(im)


def skip_reason(e: Exception) -> str:
    """Why an image file was skipped, for the skipped-files list."""
    from PIL import Image

    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"too large ({e})"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _decode(path: Path, size: int | tuple[int, int], max_pixels: int):
    """One file -> ('L' or 'RGB') PIL image of ``size`` x ``size`` (or ``size = (H, W)``); raises on
    anything broken."""
    from PIL import Image, ImageOps

    h, w = (size, size) if isinstance(size, int) else size
    im = open_image(path, max_pixels, draft=max(h, w))
    # resize so that the image covers H x W, then centre-crop (ImageOps.fit crops to the aspect
    # first, then resizes with an antialiasing filter; same result, less work)
    return ImageOps.fit(im, (w, h), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))


def image_rows(im, channels: int) -> np.ndarray:
    """A decoded ('L' or 'RGB') PIL image -> uint8 (channels, H, W) (1 = 'L', 3 = 'RGB')."""
    mode = "L" if channels == 1 else "RGB"
    a = np.asarray(im.convert(mode) if im.mode != mode else im)
    return a.reshape(a.shape[0], a.shape[1], channels).transpose(2, 0, 1)


def folder_size(cfg) -> tuple[int, int]:
    """The (H, W) folder images are read at: ``data.image_size`` (N or HxW), 0 = ``DEFAULT_FOLDER_SIZE``."""
    from ..config import image_hw

    h, w = image_hw(cfg.data.image_size)
    return (h, w) if h else (DEFAULT_FOLDER_SIZE, DEFAULT_FOLDER_SIZE)


def folder_files(cfg, path: str | Path) -> tuple[Path, list[Path]]:
    """(the folder, its image files up to ``data.limit``), or a one-line DataError."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"image folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"not a folder: {root} (data.name=folder:PATH needs a folder of images)")
    files = list_image_files(root)[:cfg.data.limit or None]  # data.limit: the first N files (sorted by path)
    if not files:
        raise DataError(f"no image files ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) under {root}")
    return root, files


def none_readable(root: Path, n: int, skipped: list[SkippedFile]) -> DataError:
    first = skipped[0]
    return DataError(f"none of the {n} image files under {root} could be read "
                     f"(e.g. {first.path.name}: {first.reason})")


class ImageFolderSource(InMemorySource):
    """An unlabelled folder of images, decoded once into memory (see :func:`folder_source`).

    Extra attributes: ``files`` (the images used, in order) and ``skipped`` (a list of
    :class:`SkippedFile` with the reason each unreadable file was left out).
    """

    def __init__(self, data: Tensor, *, files: list[Path], skipped: list[SkippedFile],
                 seed: int, description: str):
        super().__init__(data, None, seed=seed, num_classes=0, description=description)
        self.files = files
        self.skipped = skipped


def list_image_files(path: str | Path) -> list[Path]:
    """Image files under ``path``, recursively, sorted (suffixes in ``IMAGE_EXTENSIONS``)."""
    root = Path(path).expanduser()
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def folder_source(cfg, path: str | Path, *, max_pixels: int = MAX_PIXELS) -> ImageFolderSource:
    """Every image under ``path`` (recursively), decoded with PIL once into memory.

    - Files: suffixes in ``IMAGE_EXTENSIONS``; animated GIF/TIFF use their first frame; EXIF
      orientation is applied.
    - Channels (``cfg.data.channels``): 1 = grayscale ('L'), 3 = RGB, 0 = RGB unless every image
      is grayscale (judged by PIL mode: 1, L, LA, I, I;16, F; palette images count as colour).
      RGB -> gray uses PIL's BT.601 luma. Palette images are expanded; transparency (RGBA, LA, palette with
      transparency) is composited on a white background; CMYK and other colour modes go through
      PIL's RGB conversion; 16-bit gray ('I;16', or 'I' with values above 255) is scaled to 8
      bits by 255/65535, float ('F') images with values <= 1 by 255.
    - Size (``cfg.data.image_size``, 0 = ``DEFAULT_FOLDER_SIZE`` = 64): the shorter side is
      resized to it (bicubic, antialiased), then the centre square is cropped; with HxW (e.g.
      48x64) the image is resized to cover H x W, then the centre H x W is cropped.
    - Broken files (zero bytes, truncated, not images, more than ``max_pixels`` pixels) are
      skipped; the source's ``skipped`` lists them and its description counts them.
    - Unlabelled: class subfolders are read like any other subfolder (``num_classes`` 0).

    Raises :class:`DataError` when the folder is missing, holds no image files, or none of them
    can be read.
    """
    root, files = folder_files(cfg, path)
    size = folder_size(cfg)  # (H, W)
    channels = cfg.data.channels

    from tqdm.auto import tqdm

    show = len(files) > PROGRESS_MIN_FILES and getattr(getattr(cfg, "train", None), "progress", True)
    decoded: list = []
    used: list[Path] = []
    skipped: list[SkippedFile] = []
    for f in tqdm(files, desc=f"decoding {root.name or root}", unit="img", disable=not show,
                  leave=False):
        try:
            im = _decode(f, size, max_pixels)
        except Exception as e:  # PIL raises many types on bad data; skip the file, keep a reason
            skipped.append(SkippedFile(f, skip_reason(e)))
            continue
        decoded.append(im)
        used.append(f)
    if not decoded:
        raise none_readable(root, len(files), skipped)

    if channels == 0:
        channels = 1 if all(im.mode == "L" for im in decoded) else 3
    data = torch.empty((len(decoded), channels, *size), dtype=torch.uint8)
    for i, im in enumerate(decoded):
        data[i] = torch.from_numpy(image_rows(im, channels).copy())
    desc = (f"folder {root}: {len(decoded)} images {channels}x{size[0]}x{size[1]}, unlabelled"
            + (f", {len(skipped)} unreadable files skipped" if skipped else ""))
    return ImageFolderSource(data, files=used, skipped=skipped, seed=cfg.seed, description=desc)


__all__ = ["DEFAULT_FOLDER_SIZE", "IMAGE_EXTENSIONS", "ImageFolderSource", "MAX_PIXELS", "PROGRESS_MIN_FILES",
           "SkippedFile", "folder_files", "folder_size", "folder_source", "image_rows", "list_image_files",
           "none_readable", "open_image", "skip_reason"]
