"""What every data source provides: batches of real samples, and a resumable position."""

from __future__ import annotations

import torch
from torch import Tensor


from ..errors import DataError  # noqa: F401  (re-exported: data modules raise it)


class DataSource:
    """A source of real batches.

    Attributes:
        shape: per-sample shape, ``(C, H, W)`` for images or ``(D,)`` for vectors.
        num_classes: number of labels, 0 when unlabelled.
        description: one line for logs.
    """

    shape: tuple[int, ...] = ()
    num_classes: int = 0
    description: str = ""
    cond_shape: tuple[int, ...] | None = None  # shape of y's samples when y is an image (paired / unpaired)

    def next(self, n: int) -> tuple[Tensor, Tensor | None]:
        """The next ``n`` real samples ``(x, y)``; ``y`` is None when unlabelled."""
        raise NotImplementedError

    def preview(self, n: int) -> tuple[Tensor, Tensor | None]:
        """The first ``n`` samples ``(x, y)`` in a fixed order, without moving the position
        (the inputs of a run's sample pictures)."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class InMemorySource(DataSource):
    """A finite dataset held in memory, visited in epochs of a seeded random permutation.

    Images are kept as uint8 ``(N, C, H, W)`` and converted to float in [-1, 1] per batch, so the
    CPU spends its time on the nets, not on decoding. The position in the epoch and the
    permutation generator are part of :meth:`state_dict`, so resume continues the same order.
    """

    def __init__(self, data: Tensor, labels: Tensor | None = None, *, seed: int = 0,
                 num_classes: int = 0, description: str = ""):
        if data.shape[0] == 0:
            raise DataError(f"dataset is empty: {description or 'no samples'}")
        self.data = data
        self.labels = labels
        self.shape = tuple(data.shape[1:])
        self.num_classes = num_classes
        self.description = description
        self._gen = torch.Generator().manual_seed(int(seed))
        self._perm = torch.randperm(len(data), generator=self._gen)
        self._pos = 0
        self.epoch = 0

    def __len__(self) -> int:
        return self.data.shape[0]

    def _take(self, n: int) -> Tensor:
        out = []
        while n > 0:
            if self._pos >= len(self._perm):
                self._perm = torch.randperm(len(self.data), generator=self._gen)
                self._pos = 0
                self.epoch += 1
            k = min(n, len(self._perm) - self._pos)
            out.append(self._perm[self._pos:self._pos + k])
            self._pos += k
            n -= k
        return torch.cat(out)

    def preview(self, n: int):
        return self._batch(torch.arange(min(n, len(self))))

    def next(self, n: int):
        return self._batch(self._take(n))

    def _batch(self, idx: Tensor):
        x = self.data[idx]
        if x.dtype == torch.uint8:
            x = x.float().div_(127.5).sub_(1.0)  # (B, C, H, W) in [-1, 1]
        y = self.labels[idx] if self.labels is not None else None
        return x, y

    def state_dict(self) -> dict:
        return {"gen": self._gen.get_state(), "perm": self._perm.clone(),
                "pos": self._pos, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self._gen.set_state(state["gen"])
        self._perm = state["perm"].clone()
        self._pos = int(state["pos"])
        self.epoch = int(state["epoch"])
