"""Image datasets held in memory as uint8 ``(N, C, H, W)`` tensors.

Two kinds of image data:

- **Named datasets** ``fashion-mnist``, ``mnist`` and ``cifar10`` (10 classes each), read with
  torchvision from ``cfg.data_root``. Training uses the train split; evaluation code gets any
  split with :func:`load_split`. Fashion-MNIST is offline-first: :func:`prepare_fashion_mnist`
  unpacks the files of the Debian package ``dataset-fashion-mnist`` when they are installed, and
  torchvision's downloader is only the fallback (when ``cfg.data.download`` is true).
- **Folders** of image files (``data.name = folder:PATH``) are in :mod:`.folders`.

Resizing (antialiased) and channel conversion (gray <-> RGB) happen once, at load time; batches
are then plain indexing plus ``uint8 -> [-1, 1]`` in :class:`~ganforge.data.base.InMemorySource`.
Every problem the user can fix (missing files, no network, an empty folder) is a
:class:`~ganforge.data.base.DataError` with a one-line message.
"""

from __future__ import annotations

import gzip
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import DataError, InMemorySource
from .registry import DATASETS, Dataset, Split, check_classes, class_index

# -- shared helpers --------------------------------------------------------------------------

#: RGB -> gray weights of ITU-R BT.601 (the ones PIL uses for ``convert("L")``).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def default_data_root() -> Path:
    """``$GANFORGE_DATA`` or ``~/.cache/ganforge/data`` (the same rule as ``Config.data_root``)."""
    return Path(os.environ.get("GANFORGE_DATA") or "~/.cache/ganforge/data").expanduser()


def convert_channels(images: Tensor, channels: int) -> Tensor:
    """uint8 ``(N, C, H, W)`` with C in {1, 3} -> ``channels`` (0 keeps C).

    Gray -> RGB repeats the channel; RGB -> gray uses the BT.601 luma weights.
    """
    c = images.shape[1]
    if channels in (0, c):
        return images
    if c == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        w = torch.tensor(LUMA_WEIGHTS, dtype=torch.float32).view(1, 3, 1, 1)
        out = torch.empty((images.shape[0], 1, *images.shape[2:]), dtype=torch.uint8)
        for i in range(0, images.shape[0], 4096):  # chunks keep the float copy small
            chunk = images[i:i + 4096].float()
            out[i:i + 4096] = (chunk * w).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
        return out
    raise DataError(f"cannot convert images with {c} channels to {channels} channels")


def resize_images(images: Tensor, size: int) -> Tensor:
    """uint8 ``(N, C, H, W)`` -> uint8 ``(N, C, size, size)``, bilinear with antialiasing.

    Meant for the square named datasets; a non-square input is stretched (folders crop instead).
    """
    if size <= 0 or tuple(images.shape[2:]) == (size, size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, images.shape[0], 2048):
        chunk = images[i:i + 2048].float()
        chunk = F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
        out[i:i + 2048] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


# -- named datasets --------------------------------------------------------------------------

#: Where the Debian package ``dataset-fashion-mnist`` installs the original IDX .gz files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# IDX files of (Fashion-)MNIST: name -> (magic number, number of items, bytes per item)
_IDX_FILES = {
    "train-images-idx3-ubyte": (2051, 60000, 28 * 28),
    "train-labels-idx1-ubyte": (2049, 60000, 1),
    "t10k-images-idx3-ubyte": (2051, 10000, 28 * 28),
    "t10k-labels-idx1-ubyte": (2049, 10000, 1),
}


def _idx_file_ok(path: Path, name: str | None = None) -> bool:
    """True when ``path`` is a complete (Fashion-)MNIST IDX file ``name`` (default: its own
    name), checked by header and size."""
    magic, n, item = _IDX_FILES[name or path.name]
    header = 16 if magic == 2051 else 8
    try:
        if path.stat().st_size != header + n * item:
            return False
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return int.from_bytes(head[:4], "big") == magic and int.from_bytes(head[4:8], "big") == n


def _raw_complete(raw: Path) -> bool:
    return all(_idx_file_ok(raw / name) for name in _IDX_FILES)


def prepare_fashion_mnist(root: str | Path, *, source: str | Path = DEBIAN_FASHION_MNIST) -> Path:
    """Make ``ROOT/FashionMNIST/raw/`` hold the four Fashion-MNIST IDX files, without a network.

    Files already there (complete) are kept; missing or incomplete ones are un-gzipped from
    ``source`` (the Debian package's folder by default), atomically. Returns the raw folder, which
    ``torchvision.datasets.FashionMNIST(root, download=False)`` then reads. Raises
    :class:`DataError` when ``source`` lacks a needed file.
    """
    raw = Path(root).expanduser() / "FashionMNIST" / "raw"
    if _raw_complete(raw):
        return raw
    source = Path(source)
    for name in _IDX_FILES:
        dst = raw / name
        if _idx_file_ok(dst):
            continue
        src = source / f"{name}.gz"
        if not src.is_file():
            raise DataError(
                f"Fashion-MNIST is not in {raw} and {src} is missing: run "
                f"`apt-get install dataset-fashion-mnist`, or put the four IDX files "
                f"({', '.join(_IDX_FILES)}, optionally .gz) in {raw}"
            )
        raw.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{name}.{os.getpid()}.tmp")
        try:
            with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            if not _idx_file_ok(tmp, name):
                raise DataError(f"{src} does not hold a complete Fashion-MNIST IDX file")
            os.replace(tmp, dst)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DataError(f"could not unpack {src} into {raw}: {e}") from None
        finally:
            tmp.unlink(missing_ok=True)
    return raw


def _ensure_fashion_mnist(root: Path) -> None:
    """Offline preparation before torchvision reads Fashion-MNIST: un-gzip ``.gz`` files a user
    put in the raw folder by hand, else the Debian package's files. Does nothing when neither
    has all four files (torchvision's downloader, if allowed, is the next step)."""
    raw = root / "FashionMNIST" / "raw"
    if _raw_complete(raw):
        return
    for source in (raw, DEBIAN_FASHION_MNIST):
        if all(_idx_file_ok(raw / n) or (source / f"{n}.gz").is_file() for n in _IDX_FILES):
            prepare_fashion_mnist(root, source=source)
            return


@dataclass(frozen=True)
class ImageDataset:
    """A named torchvision image dataset: how to read it and what it holds."""

    name: str
    tv_class: str  # torchvision.datasets class name
    folder: str  # where torchvision keeps it under the data root
    shape: tuple[int, int, int]  # (C, H, W) as stored
    classes: tuple[str, ...]
    help: str
    offline: str  # how to provide the files without a network ({where} = the folder)
    prepare: object = None  # prepare(root): put locally available files where torchvision reads them

    @property
    def num_classes(self) -> int:
        return len(self.classes)


IMAGE_DATASETS: dict[str, ImageDataset] = {
    d.name: d for d in [
        ImageDataset("fashion-mnist", "FashionMNIST", "FashionMNIST/raw", (1, 28, 28),
                     ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
                     "Fashion-MNIST: 60000/10000 grayscale 28x28 clothing images, 10 classes",
                     "run `apt-get install dataset-fashion-mnist` (read offline from "
                     f"{DEBIAN_FASHION_MNIST}) or put the four IDX files (.gz or not) in {{where}}",
                     prepare=_ensure_fashion_mnist),
        ImageDataset("mnist", "MNIST", "MNIST/raw", (1, 28, 28), tuple(str(i) for i in range(10)),
                     "MNIST: 60000/10000 grayscale 28x28 handwritten digits, 10 classes",
                     "put the four MNIST IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                     "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) in {where}"),
        ImageDataset("cifar10", "CIFAR10", "cifar-10-batches-py", (3, 32, 32),
                     ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                      "ship", "truck"),
                     "CIFAR-10: 50000/10000 RGB 32x32 images, 10 classes",
                     "extract cifar-10-python.tar.gz so that {where} holds data_batch_1..5, "
                     "test_batch and batches.meta"),
    ]
}

SPLITS = ("train", "test")


def _read_torchvision(ds: ImageDataset, root: Path, train: bool, download: bool) -> tuple[Tensor, Tensor]:
    """Raw uint8 (N, C, H, W) images and int64 labels via torchvision, or a one-line DataError."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, ds.tv_class)
    where = root / ds.folder
    if ds.prepare is not None:  # offline preparation from local files (Fashion-MNIST: Debian's package)
        ds.prepare(root)
    try:
        dset = cls(str(root), train=train, download=False)
    except (RuntimeError, OSError):  # "Dataset not found or corrupted"
        hint = ds.offline.format(where=where)
        if not download:
            raise DataError(f"{ds.name} not found under {root} and data.download is false: "
                            f"{hint}, or set data.download=true") from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dset = cls(str(root), train=train, download=True)
        except Exception as e:  # network errors come in many types; the user needs one line
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(f"could not download {ds.name} into {root} ({msg}); without a "
                            f"network, {hint}") from None
    data = dset.data
    if isinstance(data, np.ndarray):  # CIFAR: (N, H, W, C) numpy
        images = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2).contiguous()
    else:  # MNIST family: (N, H, W) tensor
        images = data.unsqueeze(1).contiguous()
    labels = torch.as_tensor(dset.targets, dtype=torch.int64)
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != ds.shape:
        raise DataError(f"{ds.name} under {root} has unexpected images {tuple(images.shape)} "
                        f"{images.dtype}; delete {where} and prepare it again")
    return images, labels


def load_split(name: str, split: str = "test", *, root: str | Path | None = None,
               image_size: int = 0, channels: int = 0, limit: int = 0,
               download: bool = False, classes=()) -> tuple[Tensor, Tensor]:
    """One split of a named dataset, prepared like the training data.

    Args:
        name: ``fashion-mnist``, ``mnist`` or ``cifar10`` (see ``IMAGE_DATASETS``).
        split: ``"train"`` or ``"test"``.
        root: data root; None = ``$GANFORGE_DATA`` or ``~/.cache/ganforge/data``.
        image_size: resize to this square size (antialiased bilinear); 0 = as stored.
        channels: 1 (gray) or 3 (RGB); 0 = as stored.
        limit: keep only the first ``limit`` images of the split (in file order, after ``classes``); 0 = all.
        download: allow torchvision to download missing files.  classes: keep only these class indices.

    Returns:
        ``(images, labels)``: uint8 ``(N, C, H, W)`` in [0, 255] and int64 ``(N,)``.
    """
    if name not in IMAGE_DATASETS:
        from ..registry import did_you_mean
        raise DataError(f"unknown image dataset '{name}'{did_you_mean(name, IMAGE_DATASETS)}; "
                        f"choose from: {', '.join(IMAGE_DATASETS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}'; choose from: {', '.join(SPLITS)}")
    if channels not in (0, 1, 3):
        raise DataError(f"channels must be 0, 1 or 3, got {channels}")
    ds = IMAGE_DATASETS[name]
    root = Path(root).expanduser() if root else default_data_root()
    images, labels = _read_torchvision(ds, root, split == "train", download)
    if classes:  # data.classes: before the limit
        idx = class_index(labels, check_classes(name, classes), f"{name} {split}")
        images, labels = images[idx], labels[idx]
    if limit > 0:
        images, labels = images[:limit].clone(), labels[:limit].clone()  # free the rest
    if channels == 1:  # fewer channels first: cheaper to resize
        images = convert_channels(images, 1)
    images = resize_images(images, image_size)
    images = convert_channels(images, channels)
    return images.contiguous(), labels.contiguous()


def load_config_split(cfg, split: str = "test", *, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """:func:`load_split` with the root, size and channels of a run config.

    ``limit`` None means ``cfg.data.limit`` for the train split and all images for the test split
    (``data.limit`` only restricts training data); ``data.classes`` applies to both splits.
    """
    if limit is None:
        limit = cfg.data.limit if split == "train" else 0
    return load_split(cfg.data.name, split, root=cfg.data_root, image_size=cfg.data.image_size,
                      channels=cfg.data.channels, limit=limit, download=cfg.data.download, classes=cfg.data.classes)


def _dataset_factory(name: str):
    def build(cfg, path: str = "") -> InMemorySource:
        images, labels = load_config_split(cfg, "train")
        c, h, w = images.shape[1:]
        k, kept = IMAGE_DATASETS[name].num_classes, ",".join(map(str, cfg.data.classes))
        desc = f"{name} train: {len(images)} images {c}x{h}x{w}, {f'classes {kept} of ' if kept else ''}{k} classes"
        return InMemorySource(images, labels, seed=cfg.seed, num_classes=k, description=f"{desc}, from {cfg.data_root}")
    build.__doc__ = IMAGE_DATASETS[name].help
    build.__name__ = f"{name.replace('-', '_')}_source"
    return build


def _split(name: str, split: str, **kw) -> Split:
    return Split(*load_split(name, split, **kw))


for _name, _ds in IMAGE_DATASETS.items():
    DATASETS.register(_name)(Dataset(build=_dataset_factory(_name), task="generate", help=_ds.help,
                                     split=_split, classes=_ds.classes, subsets=True))


__all__ = ["DEBIAN_FASHION_MNIST", "IMAGE_DATASETS", "ImageDataset", "convert_channels", "default_data_root",
           "load_config_split", "load_split", "prepare_fashion_mnist", "resize_images"]
