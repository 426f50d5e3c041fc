"""Labelled subsets for semi-supervised training: keep the labels of exactly N samples per class
(Salimans et al. 2016 use 100 labels on MNIST = 10 per class, 4000 on CIFAR-10 = 400 per class);
every sample stays available as unlabelled data."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import DataError


def labels_per_class(labels: Tensor, n: int, *, seed: int = 0, num_classes: int = 0) -> Tensor:
    """Indices (K * n,) int64 of exactly ``n`` samples of each class 0..K-1, drawn at random with
    ``seed`` (the same seed and labels give the same subset), in increasing order.

    ``num_classes`` 0 means max(labels) + 1. A class with fewer than ``n`` samples is a DataError.
    """
    if labels.dim() != 1 or labels.is_floating_point():
        raise DataError(f"labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    if n < 1:
        raise DataError(f"labels per class must be >= 1, got {n}")
    if labels.numel() == 0:
        raise DataError("no labels to choose from")
    if labels.min() < 0:
        raise DataError(f"labels must be class indices >= 0, got {int(labels.min())}")
    k = num_classes or int(labels.max()) + 1
    if labels.max() >= k:
        raise DataError(f"label {int(labels.max())} is outside the {k} classes")
    gen = torch.Generator().manual_seed(int(seed))
    chosen = []
    for c in range(k):
        members = torch.nonzero(labels == c).flatten()
        if len(members) < n:
            raise DataError(f"class {c} has {len(members)} samples, fewer than the {n} labels per class asked for")
        chosen.append(members[torch.randperm(len(members), generator=gen)[:n]])
    return torch.sort(torch.cat(chosen)).values





# -- the semi-supervised data source ------------------------------------------------------------

class SemiSupervisedSource:
    """A labelled dataset seen as a semi-supervised one: every sample unlabelled, and the labels of
    ``labels_per_class`` samples per class (chosen with ``seed``).

    ``next(n) -> (x (n, ...), x_labelled (n, ...), y_labelled (n,))``: ``n`` samples of the whole
    set (labels withheld) and ``n`` of the labelled subset, each stream visited in epochs of its own
    seeded permutation. Both positions are in :meth:`state_dict`, so resume continues both exactly.
    """

    def __init__(self, inner, labels_per_class_: int, *, seed: int = 0):
        from .base import InMemorySource
        if not isinstance(inner, InMemorySource) or inner.labels is None or inner.num_classes < 2:
            raise DataError("semi-supervised training needs a labelled dataset held in memory "
                            "(e.g. semi:fashion-mnist, semi:mnist, semi:cifar10)")
        self.unlabelled = inner
        self.index = labels_per_class(inner.labels, labels_per_class_, seed=seed, num_classes=inner.num_classes)
        self.labelled = InMemorySource(inner.data[self.index], inner.labels[self.index], seed=seed + 1,
                                       num_classes=inner.num_classes)
        self.shape, self.num_classes, self.cond_shape = inner.shape, inner.num_classes, None
        self.description = (f"{inner.description}; semi-supervised: {len(self.index)} labelled "
                            f"({labels_per_class_} per class), all {len(inner)} as unlabelled")

    def next(self, n: int):
        x, _ = self.unlabelled.next(n)
        x_l, y_l = self.labelled.next(n)
        return x, x_l, y_l

    def preview(self, n: int):
        return self.unlabelled.preview(n)

    def state_dict(self) -> dict:
        return {"unlabelled": self.unlabelled.state_dict(), "labelled": self.labelled.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.unlabelled.load_state_dict(state["unlabelled"])
        self.labelled.load_state_dict(state["labelled"])


def _inner(name: str):
    from .registry import DATASETS, parse_name
    key, path = parse_name(name)
    if key not in DATASETS:
        from ..registry import did_you_mean
        raise DataError(f"semi:{name}: unknown dataset '{name}'{did_you_mean(name, DATASETS.keys())}")
    entry = DATASETS.get(key)
    if not entry.classes:
        raise DataError(f"semi:{name}: needs a labelled image dataset with classes (e.g. fashion-mnist)")
    return entry, path


def _build(cfg, path: str):
    import copy
    entry, inner_path = _inner(path)
    inner_cfg = copy.deepcopy(cfg)
    inner_cfg.data.name = path  # the wrapped dataset reads its own name
    return SemiSupervisedSource(entry.build(inner_cfg, inner_path), cfg.data.labels_per_class, seed=cfg.seed)


def _split(path: str, split: str, **kw):
    entry, inner_path = _inner(path)
    if entry.split is None:
        raise DataError(f"semi:{path}: '{path}' has no held-out split")
    return entry.split(inner_path or path, split, **kw)


def _register() -> None:
    from .registry import DATASETS, Dataset
    DATASETS.register("semi")(Dataset(
        build=_build, task="semi", scheme=True, scheme_arg="NAME", split=_split,
        help="semi:NAME: a labelled dataset (e.g. semi:fashion-mnist) with the labels of only "
             "data.labels_per_class samples per class; every sample also unlabelled"))


_register()

__all__ = ["SemiSupervisedSource", "labels_per_class"]
