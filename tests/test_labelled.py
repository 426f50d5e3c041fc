"""labels_per_class: a seeded subset with exactly N samples of each class."""

from __future__ import annotations

import pytest
import torch

from ganforge.data.base import DataError
from ganforge.data.labelled import labels_per_class

LABELS = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1, 0, 0, 1, 2, 2, 0, 1])  # 5, 5, 5 of classes 0, 1, 2


def test_exactly_n_per_class_and_seeded():
    idx = labels_per_class(LABELS, 3, seed=1)
    assert idx.dtype == torch.int64 and len(idx) == 9 and len(set(idx.tolist())) == 9
    assert torch.equal(torch.bincount(LABELS[idx], minlength=3), torch.tensor([3, 3, 3]))
    assert torch.equal(idx, torch.sort(idx).values)
    assert torch.equal(idx, labels_per_class(LABELS, 3, seed=1))
    assert any(not torch.equal(idx, labels_per_class(LABELS, 3, seed=s)) for s in range(2, 6))
    assert torch.equal(torch.sort(labels_per_class(LABELS, 5)).values, torch.arange(15))  # all of them


def test_refusals():
    with pytest.raises(DataError, match="class 1 has 2 samples"):
        labels_per_class(torch.tensor([0, 0, 0, 1, 1, 2, 2, 2]), 3)
    with pytest.raises(DataError, match="class 3 has 0"):
        labels_per_class(LABELS, 1, num_classes=4)
    with pytest.raises(DataError, match=">= 1"):
        labels_per_class(LABELS, 0)
    with pytest.raises(DataError, match="integer"):
        labels_per_class(LABELS.float(), 1)
