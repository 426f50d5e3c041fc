"""Image-to-image data: paired (input -> target) and unpaired (domain A, domain B) images.

Two source kinds, both holding uint8 ``(N, C, H, W)`` images in memory and converting each batch
to float in [-1, 1]:

- :class:`PairedSource` (``kind = "paired"``): ``next(n) -> (x, y)``, x the targets
  ``(n, *shape)`` and y the matching inputs ``(n, *cond_shape)``: pair i of x goes with pair i of
  y. One seeded permutation per epoch (as :class:`~ganforge.data.base.InMemorySource`).
- :class:`UnpairedSource` (``kind = "unpaired"``): ``next(n) -> (x, y)``, x from domain B
  ``(n, *shape)`` and y from domain A ``(n, *cond_shape)``, drawn by two independent seeded
  permutations (each domain has its own epochs).

``state_dict()`` holds the permutations, generator states and positions, so resume continues the
same order.

**Built-in tasks** from Fashion-MNIST (offline, see :mod:`ganforge.data.images`), each with a
train and a test split through :func:`load_pairs`:

=============  ==============================================  ==================================
name           input (y, domain A)                             target (x, domain B)
=============  ==============================================  ==================================
fmnist-edges   binary edge sketch: dark lines on white         the item
fmnist-blur    Gaussian blur, kernel 7, sigma 1.5              the item
fmnist-sr2     14x14, antialiased bicubic downscale            the item, 28x28
fmnist-sr4     7x7, antialiased bicubic downscale              the item, 28x28
fmnist-shoes   sneakers (class 7), unpaired                    ankle boots (class 9), unpaired
=============  ==============================================  ==================================

``data.limit`` keeps the first N pairs (for fmnist-shoes: the first N images of each class),
``data.image_size`` resizes the items before the inputs are made (for sr2 / sr4 it must divide
by 2 / 4), ``data.channels=3`` repeats the gray channel.

**Folders**: ``data.name = paired:PATH`` (:func:`paired_folder_source`) and
``unpaired:PATH`` (:func:`unpaired_folder_source`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import DATASETS
from .base import DataError, DataSource, InMemorySource
from .images import (IMAGE_EXTENSIONS, MAX_PIXELS, PROGRESS_MIN_FILES, SkippedFile, _decode,
                     convert_channels, folder_source, list_image_files, load_split, open_image, skip_reason)


def _to_unit(x: Tensor) -> Tensor:
    return x.float().div_(127.5).sub_(1.0)  # uint8 -> (B, C, H, W) in [-1, 1]


def _check_images(name: str, images: Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise DataError(f"{name} must be uint8 images (N, C, H, W), got {tuple(images.shape)} {images.dtype}")
    if images.shape[0] == 0:
        raise DataError(f"{name}: no images")


# -- sources ---------------------------------------------------------------------------------

class PairedSource(InMemorySource):
    """Aligned pairs held in memory: ``targets[i]`` is what ``inputs[i]`` should become.

    Args:
        targets: uint8 ``(N, C, H, W)``, returned as x.
        inputs: uint8 ``(N, C', H', W')``, returned as y.
        seed: seeds the permutation generator.
        files: where each pair came from (folders), for messages.
        skipped: unreadable files left out (folders).
    """

    def __init__(self, targets: Tensor, inputs: Tensor, *, seed: int = 0, description: str = "",
                 files: list | None = None, skipped: list[SkippedFile] | None = None):
        _check_images("targets", targets)
        _check_images("inputs", inputs)
        if len(targets) != len(inputs):
            raise DataError(f"{len(targets)} targets but {len(inputs)} inputs: pairs must match one to one")
        super().__init__(targets, None, seed=seed, num_classes=0, description=description)
        self.inputs = inputs
        self.kind = "paired"
        self.cond_shape = tuple(inputs.shape[1:])
        self.files = files or []
        self.skipped = skipped or []

    def _batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        return _to_unit(self.data[idx]), _to_unit(self.inputs[idx])  # (n, *shape), (n, *cond_shape)

    def next(self, n: int) -> tuple[Tensor, Tensor]:
        return self._batch(self._take(n))

    def preview(self, n: int) -> tuple[Tensor, Tensor]:
        """The first ``n`` pairs in file order, without moving the position."""
        return self._batch(torch.arange(min(n, len(self))))


class UnpairedSource(DataSource):
    """Two unaligned image sets: domain A (the inputs, y) and domain B (the data, x).

    Each domain is an :class:`~ganforge.data.base.InMemorySource` with its own permutation
    generator (seeds ``2 * seed + 1`` for A, ``2 * seed`` for B), so the two orders are
    independent. ``len()`` is the size of domain B; ``len(source.a)`` that of A.
    """

    kind = "unpaired"
    num_classes = 0

    def __init__(self, images_b: Tensor, images_a: Tensor, *, seed: int = 0, description: str = "",
                 skipped: list[SkippedFile] | None = None):
        _check_images("domain B", images_b)
        _check_images("domain A", images_a)
        self.b = InMemorySource(images_b, seed=2 * int(seed), description="domain B")
        self.a = InMemorySource(images_a, seed=2 * int(seed) + 1, description="domain A")
        self.shape = self.b.shape
        self.cond_shape = self.a.shape
        self.description = description
        self.skipped = skipped or []

    def __len__(self) -> int:
        return len(self.b)

    def next(self, n: int) -> tuple[Tensor, Tensor]:
        x, _ = self.b.next(n)  # (n, *shape) from B
        y, _ = self.a.next(n)  # (n, *cond_shape) from A
        return x, y

    def preview(self, n: int) -> tuple[Tensor, Tensor]:
        """The first ``min(n, len(A), len(B))`` images of each domain, without moving the positions."""
        k = min(n, len(self.a), len(self.b))
        idx = torch.arange(k)
        return _to_unit(self.b.data[idx]), _to_unit(self.a.data[idx])  # (k, *shape), (k, *cond_shape)

    def state_dict(self) -> dict:
        return {"a": self.a.state_dict(), "b": self.b.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.a.load_state_dict(state["a"])
        self.b.load_state_dict(state["b"])


# -- built-in Fashion-MNIST tasks ----------------------------------------------------------------

#: Sobel magnitude (scaled so a 0 -> 1 step edge gives 1) above which a pixel is an edge.
EDGE_THRESHOLD = 0.25
#: Gaussian blur of fmnist-blur: kernel size and sigma (pixels).
BLUR_KERNEL, BLUR_SIGMA = 7, 1.5
#: Fashion-MNIST classes of fmnist-shoes: domain A sneakers, domain B ankle boots.
SHOES_A, SHOES_B = 7, 9
_CHUNK = 4096  # images per float chunk (keeps the float copies small)


def edge_sketch(images: Tensor, threshold: float = EDGE_THRESHOLD) -> Tensor:
    """uint8 ``(N, C, H, W)`` -> uint8 ``(N, 1, H, W)`` binary edge map: 0 (black) where the
    Sobel gradient magnitude of the channel mean exceeds ``threshold`` (in units of a full
    0 -> 255 step), 255 (white) elsewhere. Deterministic: dark lines on a light background."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / (4 * 255)
    kernel = torch.stack([kx, kx.T]).unsqueeze(1)  # (2, 1, 3, 3): d/dx, d/dy
    out = torch.empty((images.shape[0], 1, *images.shape[2:]), dtype=torch.uint8)
    for i in range(0, images.shape[0], _CHUNK):
        x = images[i:i + _CHUNK].float().mean(1, keepdim=True)  # (n, 1, H, W) in [0, 255]
        g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel)  # (n, 2, H, W)
        edges = g.pow(2).sum(1, keepdim=True).sqrt() > threshold
        out[i:i + _CHUNK] = torch.where(edges, 0, 255).to(torch.uint8)
    return out


def blur(images: Tensor, kernel_size: int = BLUR_KERNEL, sigma: float = BLUR_SIGMA) -> Tensor:
    """uint8 ``(N, C, H, W)`` -> uint8, Gaussian-blurred (torchvision's ``gaussian_blur``,
    reflection padding, rounded back to bytes)."""
    from torchvision.transforms.functional import gaussian_blur

    out = torch.empty_like(images)
    for i in range(0, images.shape[0], _CHUNK):
        out[i:i + _CHUNK] = gaussian_blur(images[i:i + _CHUNK], [kernel_size, kernel_size], [sigma, sigma])
    return out


def downscale(images: Tensor, factor: int) -> Tensor:
    """uint8 ``(N, C, H, W)`` -> uint8 ``(N, C, H / factor, W / factor)``, antialiased bicubic."""
    h, w = images.shape[2:]
    if h % factor or w % factor:
        raise DataError(f"images of {h}x{w} cannot be downscaled by {factor}: set data.image_size "
                        f"to a multiple of {factor}")
    out = torch.empty((*images.shape[:2], h // factor, w // factor), dtype=torch.uint8)
    for i in range(0, images.shape[0], _CHUNK):
        x = F.interpolate(images[i:i + _CHUNK].float(), size=(h // factor, w // factor), mode="bicubic",
                          align_corners=False, antialias=True)
        out[i:i + _CHUNK] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


@dataclass(frozen=True)
class PairTask:
    """A built-in image-to-image task made from Fashion-MNIST."""

    name: str
    kind: str  # "paired" | "unpaired"
    help: str
    make_input: object = None  # paired: uint8 targets (N, 1, H, W) -> uint8 inputs


PAIR_TASKS: dict[str, PairTask] = {t.name: t for t in [
    PairTask("fmnist-edges", "paired", "Fashion-MNIST edges -> item: binary Sobel sketch (dark on light) "
             "to the 28x28 item, 60000/10000 pairs", edge_sketch),
    PairTask("fmnist-blur", "paired", f"Fashion-MNIST deblurring: Gaussian blur (kernel {BLUR_KERNEL}, "
             f"sigma {BLUR_SIGMA}) -> sharp 28x28 item, 60000/10000 pairs", blur),
    PairTask("fmnist-sr2", "paired", "Fashion-MNIST x2 super-resolution: 14x14 (antialiased bicubic) "
             "-> 28x28, 60000/10000 pairs", lambda x: downscale(x, 2)),
    PairTask("fmnist-sr4", "paired", "Fashion-MNIST x4 super-resolution: 7x7 (antialiased bicubic) "
             "-> 28x28, 60000/10000 pairs", lambda x: downscale(x, 4)),
    PairTask("fmnist-shoes", "unpaired", "Fashion-MNIST sneakers (A, class 7) <-> ankle boots (B, class 9), "
             "unpaired, 6000/1000 per class"),
]}


def load_pairs(name: str, split: str = "train", root: str | Path | None = None, limit: int | None = None,
               *, image_size: int = 0, channels: int = 0, download: bool = False) -> tuple[Tensor, Tensor]:
    """One split of a built-in task: ``(x_target, y_input)``, uint8 ``(N, C, H, W)`` and
    ``(N', C, H', W')``.

    Args:
        name: a key of ``PAIR_TASKS`` (fmnist-edges, fmnist-blur, fmnist-sr2, fmnist-sr4,
            fmnist-shoes).
        split: ``"train"`` or ``"test"``.
        root: data root; None = ``$GANFORGE_DATA`` or ``~/.cache/ganforge/data``.
        limit: keep the first ``limit`` pairs (fmnist-shoes: images per domain); None or 0 = all.
        image_size: resize the items first (antialiased); 0 = 28.
        channels: 3 repeats the gray channel in both; 0 or 1 keep one channel.
        download: allow torchvision to download Fashion-MNIST when it is not installed.

    Paired tasks give N = N' and aligned pairs; fmnist-shoes gives ankle boots (domain B) as
    x and sneakers (domain A) as y, each in file order.
    """
    if name not in PAIR_TASKS:
        from ..registry import did_you_mean
        raise DataError(f"unknown image-to-image task '{name}'{did_you_mean(name, PAIR_TASKS)}; "
                        f"choose from: {', '.join(PAIR_TASKS)}")
    if channels not in (0, 1, 3):
        raise DataError(f"channels must be 0, 1 or 3, got {channels}")
    task = PAIR_TASKS[name]
    limit = limit or 0
    if task.kind == "unpaired":
        images, labels = load_split("fashion-mnist", split, root=root, image_size=image_size, channels=1,
                                    download=download)
        x, y = images[labels == SHOES_B], images[labels == SHOES_A]
        if limit > 0:
            x, y = x[:limit], y[:limit]
    else:
        x, _ = load_split("fashion-mnist", split, root=root, image_size=image_size, channels=1,
                          limit=limit, download=download)
        y = task.make_input(x)
    return convert_channels(x, channels).contiguous(), convert_channels(y, channels).contiguous()


def load_config_pairs(cfg, split: str = "test", *, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """:func:`load_pairs` for the built-in task of a run config (``cfg.data.name``), with its
    root, size and channels. ``limit`` None = ``cfg.data.limit`` for train, all for test."""
    if limit is None:
        limit = cfg.data.limit if split == "train" else 0
    return load_pairs(cfg.data.name, split, root=cfg.data_root, limit=limit, image_size=cfg.data.image_size,
                      channels=cfg.data.channels, download=cfg.data.download)


def _shape(t: Tensor) -> str:
    return "x".join(map(str, t.shape[1:]))


def _task_factory(task: PairTask):
    def factory(cfg) -> DataSource:
        x, y = load_config_pairs(cfg, "train")
        if task.kind == "unpaired":
            desc = (f"{task.name} train: A {len(y)} images {_shape(y)} (sneakers), B {len(x)} images "
                    f"{_shape(x)} (ankle boots), unpaired, from {cfg.data_root}")
            return UnpairedSource(x, y, seed=cfg.seed, description=desc)
        desc = f"{task.name} train: {len(x)} pairs, input {_shape(y)} -> target {_shape(x)}, from {cfg.data_root}"
        return PairedSource(x, y, seed=cfg.seed, description=desc)
    factory.__doc__ = task.help
    factory.__name__ = f"{task.name.replace('-', '_')}_source"
    return factory


for _task in PAIR_TASKS.values():
    DATASETS.register(_task.name, help=_task.help)(_task_factory(_task))


# -- folders ---------------------------------------------------------------------------------

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

    Decoding as in :func:`~ganforge.data.images.folder_source` (modes, transparency, EXIF;
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

    Each domain is read by :func:`~ganforge.data.images.folder_source`: recursively, resized and
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


__all__ = ["BLUR_KERNEL", "BLUR_SIGMA", "EDGE_THRESHOLD", "PAIR_TASKS", "PairTask", "PairedSource",
           "SHOES_A", "SHOES_B", "UnpairedSource", "blur", "downscale", "edge_sketch", "load_config_pairs",
           "load_pairs", "paired_folder_source", "unpaired_folder_source"]
