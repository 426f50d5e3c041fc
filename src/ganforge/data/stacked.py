"""Stacked Fashion-MNIST (docs/protocols.md section 2): 1000 modes from triples of clothing images.

A sample stacks three independently drawn Fashion-MNIST train images as its three channels:
``(3, 28, 28)``, label = the class triple encoded as ``c0 * 100 + c1 * 10 + c2`` (1000
classes). It is the Stacked-MNIST protocol (VEEGAN, PacGAN) with Fashion-MNIST in place of
MNIST; a generator's modes are counted by :func:`stacked_modes` with the project's Fashion-MNIST
classifier on 26,000 samples.

**Fresh triples, not a fixed stacked set.** :class:`StackedSource` keeps the single-channel
train images in memory and draws every batch's triples anew (three uniform indices per sample,
with replacement) from its own seeded generator. Why not a fixed set of, say, 60,000 stacked
images visited in epochs:

- the data distribution is then exactly the protocol's: the product of three copies of the
  Fashion-MNIST train distribution. Its 10 classes have 6,000 images each, so each of the 1000
  modes has probability exactly 1/1000 and the KL target of the protocol is really 0. A fixed
  set of 60,000 triples puts a multinomial count on each mode (60 +- 7.7), i.e. a data set
  whose own KL to uniform is about 0.5 * 999 / 60000 ~ 0.008 and whose rarest modes hold ~40
  images: a bias at the scale of the 0.05 target;
- nothing is memorised or repeated: 60000^3 distinct triples;
- memory stays at the 47 MB of single-channel images, not three times that.

Resume is exact: :meth:`StackedSource.state_dict` holds the generator's state (and the count of
samples drawn), so a resumed run draws the same triples as an uninterrupted one.

``cfg.data.limit`` (0 = all 60,000) restricts the pool of single images to the first ``limit``
of the train split, like the other image datasets; ``cfg.data.image_size`` resizes them (e.g. 32
for nets that want powers of two); ``cfg.data.channels`` must be 0 or 3.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..metrics.modes import KL, MODES, stacked_mode_metrics
from .base import DataError, DataSource
from .images import load_split
from .registry import DATASETS, Dataset, Split

BASE = "fashion-mnist"  # the dataset whose images are stacked
CHANNELS = 3  # images per sample (the stacked channels)
CLASSES = 10  # classes per channel
NUM_MODES = CLASSES ** CHANNELS  # 1000
PLACE = torch.tensor([CLASSES ** (CHANNELS - 1 - i) for i in range(CHANNELS)])  # (100, 10, 1)
#: Generated samples the protocol evaluates.
PROTOCOL_SAMPLES = 26_000


def encode_triples(classes: Tensor) -> Tensor:
    """``(N, 3)`` class triples -> ``(N,)`` int64 labels ``c0 * 100 + c1 * 10 + c2``."""
    return (classes.to(torch.int64) * PLACE.to(classes.device)).sum(1)


def decode_labels(labels: Tensor) -> Tensor:
    """``(N,)`` labels -> ``(N, 3)`` class triples (inverse of :func:`encode_triples`)."""
    return torch.div(labels.to(torch.int64).unsqueeze(1), PLACE.to(labels.device),
                     rounding_mode="floor") % CLASSES


def stack(images: Tensor, labels: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """Stack single-channel ``images (N, 1, H, W)`` picked by ``idx (B, 3)`` -> uint8
    ``(B, 3, H, W)`` and their labels ``(B,)`` (``c0 * 100 + c1 * 10 + c2``)."""
    return images[:, 0][idx], encode_triples(labels[idx])


def stack_random(images: Tensor, labels: Tensor, n: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` stacked images drawn with ``seed`` from single-channel ``images (N, 1, H, W)``:
    uint8 ``(n, 3, H, W)`` and labels ``(n,)``. E.g. real stacked test images for reference
    statistics or for checking the mode counter."""
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randint(len(images), (n, CHANNELS), generator=g)
    return stack(images, labels, idx)


def load_stacked_split(split: str = "test", n: int = 10_000, *, seed: int = 0, root=None,
                       image_size: int = 0, download: bool = False) -> tuple[Tensor, Tensor]:
    """``n`` stacked images drawn with ``seed`` from one Fashion-MNIST split: uint8
    ``(n, 3, S, S)`` and labels ``(n,)``."""
    images, labels = load_split(BASE, split, root=root, image_size=image_size, channels=1,
                                download=download)
    return stack_random(images, labels, n, seed=seed)


class StackedSource(DataSource):
    """Stacked images drawn afresh every batch from single-channel images held in memory.

    Args:
        images: uint8 ``(N, 1, H, W)``, the pool the channels are drawn from.
        labels: int64 ``(N,)`` classes in [0, 10).
        seed: seeds the source's own generator (the triples drawn).
    """

    num_classes = NUM_MODES

    def __init__(self, images: Tensor, labels: Tensor, *, seed: int = 0, description: str = ""):
        if images.dim() != 4 or images.shape[1] != 1 or images.dtype != torch.uint8:
            raise DataError(f"stacked images need uint8 (N, 1, H, W) singles, got "
                            f"{tuple(images.shape)} {images.dtype}")
        if images.shape[0] == 0:
            raise DataError(f"dataset is empty: {description or 'no images to stack'}")
        if labels.shape != (images.shape[0],) or int(labels.min()) < 0 or int(labels.max()) >= CLASSES:
            raise DataError(f"stacked images need one label in [0, {CLASSES}) per image")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.shape = (CHANNELS, *images.shape[2:])
        self.description = description
        self._gen = torch.Generator().manual_seed(int(seed))
        self.drawn = 0  # samples returned so far

    def __len__(self) -> int:
        """Size of the pool of single images (the stacked set itself is unbounded)."""
        return self.images.shape[0]

    def next_uint8(self, n: int) -> tuple[Tensor, Tensor]:
        """The next ``n`` samples as uint8 ``(n, 3, H, W)`` and labels ``(n,)``."""
        idx = torch.randint(len(self.images), (n, CHANNELS), generator=self._gen)  # (n, 3)
        self.drawn += n
        return stack(self.images, self.labels, idx)

    def next(self, n: int) -> tuple[Tensor, Tensor]:
        x, y = self.next_uint8(n)
        return x.float().div_(127.5).sub_(1.0), y  # (n, 3, H, W) in [-1, 1], (n,)

    def preview(self, n: int) -> tuple[Tensor, Tensor]:
        idx = torch.randint(len(self.images), (n, CHANNELS), generator=torch.Generator().manual_seed(0))
        x, y = stack(self.images, self.labels, idx)
        return x.float().div_(127.5).sub_(1.0), y

    def state_dict(self) -> dict:
        return {"gen": self._gen.get_state(), "drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self._gen.set_state(state["gen"])
        self.drawn = int(state["drawn"])


def stacked_fmnist_source(cfg, path: str = "") -> StackedSource:
    """Stacked Fashion-MNIST: each sample stacks 3 random train images as its channels; label
    c0*100 + c1*10 + c2 (1000 classes). Triples are drawn afresh every batch (module docstring)."""
    if cfg.data.channels not in (0, CHANNELS):
        raise DataError(f"stacked-fmnist has {CHANNELS} channels; data.channels must be 0 or "
                        f"{CHANNELS}, got {cfg.data.channels}")
    images, labels = load_split(BASE, "train", root=cfg.data_root, image_size=cfg.data.image_size,
                                channels=1, limit=cfg.data.limit, download=cfg.data.download)
    h, w = images.shape[2:]
    desc = (f"stacked-fmnist: 3 of {len(images)} Fashion-MNIST train images stacked per sample, "
            f"3x{h}x{w}, {NUM_MODES} modes, fresh triples per batch, from {cfg.data_root}")
    return StackedSource(images, labels, seed=cfg.seed, description=desc)


# -- evaluation ------------------------------------------------------------------------------

def _classifier(classifier, device):
    """An extractor instance: given, built from a class, or the shipped Fashion-MNIST CNN."""
    if classifier is None:
        from ..features import FmnistFeatures
        return FmnistFeatures(device=device)
    if isinstance(classifier, type):
        return classifier(device=device)
    return classifier


@torch.no_grad()
def stacked_classes(images: Tensor, classifier=None, *, batch_size: int = 1000,
                    device="cpu") -> Tensor:
    """Predicted class triples ``(N, 3)`` (int64, CPU): each channel of ``images (N, 3, H, W)``
    (in [-1, 1], or uint8) classified on its own by ``classifier`` (default: the shipped
    Fashion-MNIST classifier, :class:`~ganforge.features.FmnistFeatures`), argmax of its probs."""
    if images.dim() != 4 or images.shape[1] != CHANNELS:
        raise ValueError(f"stacked images must be (N, {CHANNELS}, H, W), got {tuple(images.shape)}")
    clf = _classifier(classifier, device)
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i:i + batch_size]
        b, _, h, w = x.shape
        _, probs = clf(x.reshape(b * CHANNELS, 1, h, w))  # channel c of sample j is row 3j + c
        out.append(probs.argmax(1).view(b, CHANNELS).cpu())
    return torch.cat(out) if out else torch.empty(0, CHANNELS, dtype=torch.int64)


@torch.no_grad()
def stacked_modes(samples, classifier=None, *, n: int = PROTOCOL_SAMPLES, seed: int = 0,
                  batch_size: int = 1000, device="cpu") -> dict[str, float]:
    """Modes and KL of stacked samples (docs/protocols.md section 2).

    Args:
        samples: either images ``(N, 3, H, W)`` in [-1, 1] (all N are used), or a sampler
            ``samples(k, seed) -> (k, 3, H, W)`` (the convention of
            :func:`ganforge.evaluate.evaluate_generator`) from which ``n`` images are drawn in
            batches of ``batch_size``, batch i with seed ``seed * 1_000_003 + i``.
        classifier: a Fashion-MNIST extractor instance or class; default the shipped
            :class:`~ganforge.features.FmnistFeatures`.
        n: samples to draw from a sampler; the protocol's 26,000 by default.

    Returns:
        ``{"modes": int, "kl": float}``: distinct class triples, and KL(p_hat || uniform over
        1000) = sum p log(p * 1000) (:func:`ganforge.metrics.modes.stacked_mode_metrics`).
    """
    clf = _classifier(classifier, device)
    if callable(samples) and not isinstance(samples, Tensor):
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        triples = []
        for i, s in enumerate(range(0, n, batch_size)):
            x = samples(min(batch_size, n - s), seed * 1_000_003 + i)
            triples.append(stacked_classes(x, clf, batch_size=batch_size))
        classes = torch.cat(triples)
    else:
        classes = stacked_classes(torch.as_tensor(samples), clf, batch_size=batch_size)
    out = stacked_mode_metrics(classes, num_classes=clf.num_classes)
    return {MODES: out[MODES], KL: out[KL]}


__all__ = ["NUM_MODES", "PROTOCOL_SAMPLES", "StackedSource", "decode_labels", "encode_triples",
           "load_stacked_split", "stack", "stack_random", "stacked_classes", "stacked_fmnist_source",
           "stacked_modes"]


def _split(name: str, split: str, *, root=None, image_size: int = 0, channels: int = 0, limit: int = 0,
           download: bool = False) -> Split:
    """A fixed set of stacked images drawn (seed 0) from one split: 10,000 or ``limit``."""
    images, labels = load_stacked_split(split, limit or 10_000, seed=0, root=root, image_size=image_size,
                                        download=download)
    return Split(images, labels)


DATASETS.register("stacked-fmnist")(Dataset(
    build=stacked_fmnist_source, task="generate", split=_split,
    help="Stacked Fashion-MNIST: 3 random train images as channels, 1000 modes (class triples)",
    modes=lambda sample_fn, n, seed=0: stacked_modes(sample_fn, n=n, seed=seed)))
