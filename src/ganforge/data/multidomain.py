"""Multi-domain image data for StarGAN-style translation: an offline benchmark built from
Fashion-MNIST, and ``multidomain:PATH`` for a user's own images.

**fmnist-domains.** Every Fashion-MNIST image is shown in one domain, drawn at random (seeded):

    0 original | 1 inverted (negative: white background) | 2 rotated (90 degrees anticlockwise)
    3 flipped (upside down)

Why these: each is a bijection of the image, so the content (the garment class) is exactly
recoverable by undoing the domain's transform (:func:`from_domain`), and content preservation of
a translation G(x, k) is measurable as the accuracy of the shipped Fashion-MNIST classifier on
``from_domain(G(x, k), k)`` against x's class. The four are easy to tell apart, so target-domain
accuracy is measurable by any small domain classifier: background polarity for inversion,
orientation for rotation, which end holds collars / heels / handles for the vertical flip. A
horizontal flip is deliberately not a domain: most garments are nearly left-right symmetric (and
the shipped classifier was trained with horizontal-flip augmentation), so it could not be
recognised. Stroke thickness was rejected because thickening is not invertible (content could not
be checked exactly).

``mode="attributes"`` makes the three transforms independent binary attributes (a multi-hot
(N, 3) float label, each of the 8 combinations equally likely), the CelebA-style multi-label
setting. Transforms compose in a fixed order: flip, then rotate, then invert.

**multidomain:PATH** reads either

- a folder with one sub-folder per domain (sorted names; each image's label is its sub-folder's
  index), or
- an attribute file: CelebA's ``list_attr_celeba.txt`` layout (a count line, a line of attribute
  names, then ``FILE v1 v2 ...`` with values 1 / -1) or a CSV with a header row
  ``file,attr1,attr2,...`` (values 1 / 0 or 1 / -1); images are found relative to the file's
  folder (or ``images``); ``attributes`` keeps a subset of the columns, in that order.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .base import DataError, InMemorySource
from .registry import DATASETS, Dataset, Split

DOMAINS = ("original", "inverted", "rotated", "flipped")
ATTRIBUTES = ("inverted", "rotated", "flipped")
_DOMAIN_ATTRS = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.bool)  # (4, 3)


def domain_attributes(domains: Tensor) -> Tensor:
    """Domain indices (N,) -> the (N, 3) bool attributes (inverted, rotated, flipped) they stand
    for; float (N, 3) multi-hot attributes -> bool."""
    if domains.is_floating_point():
        if domains.dim() != 2 or domains.shape[1] != 3:
            raise ValueError(f"attributes must be (N, 3), got {tuple(domains.shape)}")
        return domains > 0.5
    return _DOMAIN_ATTRS[domains.long()]


def _invert(x: Tensor) -> Tensor:
    return 255 - x if x.dtype == torch.uint8 else -x  # uint8 [0, 255] or float [-1, 1]


def _apply(x: Tensor, attrs: Tensor, forward: bool) -> Tensor:
    out = x.clone()
    inv, rot, flip = attrs.unbind(1)
    steps = ((flip, lambda t: t.flip(-2)), (rot, lambda t: torch.rot90(t, 1 if forward else -1, (-2, -1))),
             (inv, _invert))
    for sel, fn in (steps if forward else steps[::-1]):
        if sel.any():
            out[sel] = fn(out[sel])
    return out


def to_domain(x: Tensor, domains: Tensor) -> Tensor:
    """Show original images (N, C, H, W) (uint8, or float in [-1, 1]; square) in the given
    domains (N,) or attribute vectors (N, 3)."""
    return _apply(x, domain_attributes(domains), forward=True)


def from_domain(x: Tensor, domains: Tensor) -> Tensor:
    """Undo :func:`to_domain`: images shown in ``domains`` back to the original view."""
    return _apply(x, domain_attributes(domains), forward=False)


class MultiDomainSource(InMemorySource):
    """Images with domain labels: ``next(n) -> (x, domains)``, domains (n,) int64 (one domain per
    image) or (n, K) float (multi-hot attributes). ``domain_names`` names them; ``content`` (N,)
    holds the garment classes of fmnist-domains (None for user data)."""

    def __init__(self, data: Tensor, domains: Tensor, *, domain_names: tuple[str, ...], seed: int = 0,
                 content: Tensor | None = None, description: str = ""):
        super().__init__(data, domains, seed=seed, num_classes=len(domain_names), description=description)
        self.domain_names = tuple(domain_names)
        self.multi_label = domains.is_floating_point()
        self.content = content


def fmnist_domains(images: Tensor, labels: Tensor, *, seed: int = 0, mode: str = "domains"):
    """The fmnist-domains benchmark from uint8 Fashion-MNIST images (N, 1, 28, 28) and classes (N,):
    ``(shown images (N, 1, 28, 28) uint8, domains (N,) int64 or attributes (N, 3) float, classes)``."""
    if mode not in ("domains", "attributes"):
        raise DataError(f"multi-domain mode must be 'domains' or 'attributes', got {mode!r}")
    g = torch.Generator().manual_seed(int(seed))
    if mode == "domains":
        y = torch.randint(0, len(DOMAINS), (len(images),), generator=g)
    else:
        y = torch.randint(0, 2, (len(images), len(ATTRIBUTES)), generator=g).float()
    return to_domain(images, y), y, labels


def fmnist_domains_source(cfg, *, mode: str = "domains", split: str = "train") -> MultiDomainSource:
    """fmnist-domains as a data source (Fashion-MNIST from ``cfg.data_root``, ``cfg.data.limit``)."""
    from .images import load_split
    images, labels = load_split("fashion-mnist", split, root=cfg.data_root,
                                limit=cfg.data.limit if split == "train" else 0, download=cfg.data.download)
    x, y, content = fmnist_domains(images, labels, seed=cfg.seed + (0 if split == "train" else 1), mode=mode)
    names = DOMAINS if mode == "domains" else ATTRIBUTES
    return MultiDomainSource(x, y, domain_names=names, seed=cfg.seed, content=content,
                             description=f"fmnist-domains {split}: {len(x)} images 1x28x28, "
                                         f"{mode} {', '.join(names)}")


# -- multidomain:PATH --------------------------------------------------------------------------------

def _read_attribute_file(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(attribute names, file names, values (N, K) in {0, 1}) from a CelebA-style list or a CSV."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if path.suffix.lower() == ".csv":
        rows = list(csv.reader(lines))
        names, body = [c.strip() for c in rows[0][1:]] if rows else [], rows[1:]
    else:  # CelebA: count line, names line, then whitespace-separated rows
        if len(lines) < 2 or not lines[0].strip().isdigit():
            raise DataError(f"{path}: expected a CelebA-style attribute list (a count line, a names line, rows)")
        names, body = lines[1].split(), [ln.split() for ln in lines[2:]]
    if not names or not body:
        raise DataError(f"{path} lists no attributes or no images")
    files, values = [], np.empty((len(body), len(names)))
    for i, row in enumerate(body):
        if len(row) != len(names) + 1:
            raise DataError(f"{path}: image row {i + 1} has {len(row) - 1} values for {len(names)} attributes")
        try:
            values[i] = [float(v) for v in row[1:]]
        except ValueError:
            raise DataError(f"{path}: image row {i + 1} has a value that is not a number") from None
        files.append(row[0].strip())
    if not np.isin(values, (-1, 0, 1)).all():
        raise DataError(f"{path}: attribute values must be 1 and 0 or -1")
    return names, files, (values > 0).astype(np.float32)


def _decode_all(files: list[Path], size: int, channels: int) -> tuple[Tensor, list[int]]:
    from .folders import MAX_PIXELS, _decode
    decoded, kept = [], []
    for i, f in enumerate(files):
        try:
            decoded.append(_decode(f, size, MAX_PIXELS))
            kept.append(i)
        except Exception:  # unreadable: skipped, counted in the description
            continue
    if not decoded:
        raise DataError(f"none of the {len(files)} images could be read (e.g. {files[0]})")
    if channels == 0:
        channels = 1 if all(im.mode == "L" for im in decoded) else 3
    mode = "L" if channels == 1 else "RGB"
    data = torch.empty((len(decoded), channels, size, size), dtype=torch.uint8)
    for j, im in enumerate(decoded):
        a = np.asarray(im.convert(mode) if im.mode != mode else im)
        data[j] = torch.from_numpy(a.reshape(size, size, channels).copy()).permute(2, 0, 1)
    return data, kept


def multidomain_source(path: str | Path, *, size: int = 64, channels: int = 0, seed: int = 0,
                       attributes: tuple[str, ...] | list[str] = (), images: str | Path | None = None,
                       limit: int = 0) -> MultiDomainSource:
    """``multidomain:PATH`` (see the module docstring). Images are resized / centre-cropped to
    ``size``; ``channels`` 0 = gray when every image is gray, else RGB; ``limit`` keeps the first
    N images listed."""
    from .folders import list_image_files
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"multi-domain data not found: {root}")
    if root.is_dir():
        subdirs = sorted(d for d in root.iterdir() if d.is_dir())
        found = [(d, list_image_files(d)) for d in subdirs]
        found = [(d, fs) for d, fs in found if fs]
        if len(found) < 2:
            raise DataError(f"{root} needs one sub-folder of images per domain, at least 2 "
                            f"(found {len(found)} with images)")
        names = tuple(d.name for d, _ in found)
        files = [f for _, fs in found for f in fs]
        labels = torch.tensor([k for k, (_, fs) in enumerate(found) for _ in fs])
    else:
        all_names, listed, values = _read_attribute_file(root)
        keep = list(attributes) or all_names
        missing = [a for a in keep if a not in all_names]
        if missing:
            raise DataError(f"{root} has no attribute {missing[0]!r}; it has {', '.join(all_names[:12])}"
                            + (" ..." if len(all_names) > 12 else ""))
        base = Path(images).expanduser() if images else root.parent
        names = tuple(keep)
        files = [base / f for f in listed]
        labels = torch.from_numpy(values[:, [all_names.index(a) for a in keep]])
    if limit > 0:
        files, labels = files[:limit], labels[:limit]
    data, kept = _decode_all(files, size, channels)
    labels = labels[kept]
    skipped = len(files) - len(kept)
    desc = (f"multidomain {root}: {len(data)} images {data.shape[1]}x{size}x{size}, "
            f"{len(names)} {'attributes' if labels.is_floating_point() else 'domains'}"
            + (f", {skipped} unreadable skipped" if skipped else ""))
    return MultiDomainSource(data, labels, domain_names=names, seed=seed, description=desc)


# -- registration ------------------------------------------------------------------------------

SPLIT_SEEDS = {"train": 0, "test": 1}  # the domains of the registered splits (runs draw theirs with data.seed)


def _fmnist_split(name: str, split: str, *, root=None, limit: int = 0, download: bool = False, **_) -> Split:
    """fmnist-domains' ``split``: shown images uint8, domains (N,), content = the garment classes."""
    from .images import load_split
    if split not in SPLIT_SEEDS:
        raise DataError(f"fmnist-domains has the splits train and test, not '{split}'")
    images, labels = load_split("fashion-mnist", split, root=root, limit=limit, download=download)
    x, y, content = fmnist_domains(images, labels, seed=SPLIT_SEEDS[split])
    return Split(x, y, None, content)


def _folder_split(path: str, split: str, *, image_size: int = 0, channels: int = 0, limit: int = 0, **_) -> Split:
    """A user's multi-domain images have no held-out part: ``train`` is all of them."""
    if split != "train":
        raise DataError(f"multidomain:PATH data has no '{split}' split; compare with its training data "
                        f"(multidomain:PATH:train)")
    src = multidomain_source(path, size=image_size or DEFAULT_SIZE, channels=channels, limit=limit)
    return Split(src.data, src.labels)


def domain_names(path: str) -> tuple[str, ...]:
    """The domain (or attribute) names of ``multidomain:PATH`` data, without decoding its images."""
    from .folders import list_image_files
    root = Path(path).expanduser()
    if root.is_dir():
        return tuple(d.name for d in sorted(root.iterdir()) if d.is_dir() and list_image_files(d))
    if root.is_file():
        return tuple(_read_attribute_file(root)[0])
    raise DataError(f"multi-domain data not found: {root}")


DEFAULT_SIZE = 64  # multidomain:PATH images are resized to data.image_size, or this

DATASETS.register("fmnist-domains")(Dataset(
    build=lambda cfg, path: fmnist_domains_source(cfg), task="multidomain", split=_fmnist_split, classes=DOMAINS,
    canonical=from_domain,
    help="Fashion-MNIST shown in 4 domains (original, inverted, rotated 90, flipped upside down), one drawn per "
         "image; content = the garment class"))
DATASETS.register("multidomain")(Dataset(
    build=lambda cfg, path: multidomain_source(path, size=cfg.data.image_size or DEFAULT_SIZE,
                                               channels=cfg.data.channels, seed=cfg.seed, limit=cfg.data.limit),
    task="multidomain", scheme=True, split=_folder_split,
    help="multidomain:PATH: one sub-folder of images per domain, or a CelebA-style / CSV attribute file"))


__all__ = ["ATTRIBUTES", "domain_names", "DOMAINS", "MultiDomainSource", "domain_attributes", "fmnist_domains",
           "fmnist_domains_source", "from_domain", "multidomain_source", "to_domain"]
