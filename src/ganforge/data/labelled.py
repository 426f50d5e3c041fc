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


__all__ = ["labels_per_class"]
