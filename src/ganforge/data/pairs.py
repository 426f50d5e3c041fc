"""Image-to-image data: paired (input -> target) and unpaired (domain A, domain B) images.

Two source kinds, both holding uint8 ``(N, C, H, W)`` images in memory and converting each batch
to float in [-1, 1]:

- :class:`PairedSource` : ``next(n) -> (x, y)``, x the targets
  ``(n, *shape)`` and y the matching inputs ``(n, *cond_shape)``: pair i of x goes with pair i of
  y. One seeded permutation per epoch (as :class:`~ganforge.data.base.InMemorySource`).
- :class:`UnpairedSource` : ``next(n) -> (x, y)``, x from domain B
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

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import DataError, DataSource, InMemorySource
from .registry import DATASETS, Dataset, Split
from .folders import SkippedFile
from .images import convert_channels, load_split


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
    help: str
    make_input: object = None  # uint8 targets (N, 1, H, W) -> uint8 inputs; None: unpaired classes A <-> B


PAIR_TASKS: dict[str, PairTask] = {t.name: t for t in [
    PairTask("fmnist-edges", "Fashion-MNIST edges -> item: binary Sobel sketch (dark on light) "
             "to the 28x28 item, 60000/10000 pairs", edge_sketch),
    PairTask("fmnist-blur", f"Fashion-MNIST deblurring: Gaussian blur (kernel {BLUR_KERNEL}, "
             f"sigma {BLUR_SIGMA}) -> sharp 28x28 item, 60000/10000 pairs", blur),
    PairTask("fmnist-sr2", "Fashion-MNIST x2 super-resolution: 14x14 (antialiased bicubic) "
             "-> 28x28, 60000/10000 pairs", lambda x: downscale(x, 2)),
    PairTask("fmnist-sr4", "Fashion-MNIST x4 super-resolution: 7x7 (antialiased bicubic) "
             "-> 28x28, 60000/10000 pairs", lambda x: downscale(x, 4)),
    PairTask("fmnist-shoes", "Fashion-MNIST sneakers (A, class 7) <-> ankle boots (B, class 9), "
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
    if task.make_input is None:  # unpaired: two classes of Fashion-MNIST
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
    def build(cfg, path: str = "") -> DataSource:
        x, y = load_config_pairs(cfg, "train")
        if task.make_input is None:
            desc = (f"{task.name} train: A {len(y)} images {_shape(y)} (sneakers), B {len(x)} images "
                    f"{_shape(x)} (ankle boots), unpaired, from {cfg.data_root}")
            return UnpairedSource(x, y, seed=cfg.seed, description=desc)
        desc = f"{task.name} train: {len(x)} pairs, input {_shape(y)} -> target {_shape(x)}, from {cfg.data_root}"
        return PairedSource(x, y, seed=cfg.seed, description=desc)
    build.__doc__ = task.help
    build.__name__ = f"{task.name.replace('-', '_')}_source"
    return build


def _split(name: str, split: str, *, root=None, image_size: int = 0, channels: int = 0, limit: int = 0,
           download: bool = False) -> Split:
    """Targets (domain B) as the reference images, inputs (domain A) beside them."""
    x, y = load_pairs(name, split, root=root, limit=limit, image_size=image_size, channels=channels,
                      download=download)
    return Split(x, None, y)


for _task in PAIR_TASKS.values():
    DATASETS.register(_task.name)(Dataset(build=_task_factory(_task), split=_split, help=_task.help,
                                          task="paired" if _task.make_input is not None else "unpaired"))


__all__ = ["BLUR_KERNEL", "BLUR_SIGMA", "EDGE_THRESHOLD", "PAIR_TASKS", "PairTask", "PairedSource",
           "SHOES_A", "SHOES_B", "UnpairedSource", "blur", "downscale", "edge_sketch", "load_config_pairs",
           "load_pairs"]
