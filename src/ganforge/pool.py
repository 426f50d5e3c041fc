"""A history of generated images for the discriminator (Shrivastava et al. 2017), as CycleGAN
uses it (Zhu et al. 2017, section 4: a buffer of the 50 last generated images).

D then sees fakes from earlier generators too, which damps oscillation. The trainer passes
G's (detached) fakes through :meth:`ImagePool.query` before the D phase; G's own loss uses the
fresh fakes.
"""

from __future__ import annotations

import torch
from torch import Tensor


class ImagePool:
    """A buffer of up to ``size`` past images.

    :meth:`query` takes a batch and returns a batch of the same shape, image by image:

    - while the pool holds fewer than ``size`` images, the new image is stored and returned;
    - once it is full, with probability 1/2 a uniformly chosen stored image is returned and
      replaced by the new one, otherwise the new image is returned (and not stored).

    ``size`` 0 turns the pool off: batches pass through unchanged. The coin flips and picks come
    from ``generator`` (a CPU :class:`torch.Generator`), so a seeded run is reproducible;
    :meth:`state_dict` holds the stored images, their count and the generator's state, so a
    resumed run makes the same choices.
    """

    def __init__(self, size: int = 50,  # images kept; 0 = pass-through
                 generator: torch.Generator | None = None):  # source of the draws; None = a new unseeded one
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = int(size)
        self.generator = generator if generator is not None else torch.Generator()
        self.images: Tensor | None = None  # (size, ...) storage, allocated on the first query
        self.count = 0  # images stored so far (<= size)

    def __len__(self) -> int:
        return self.count

    @torch.no_grad()
    def query(self, images: Tensor) -> Tensor:
        """A batch ``(B, ...)`` -> ``(B, ...)`` of new and stored images (detached)."""
        images = images.detach()
        if self.size == 0:
            return images
        if self.images is None:
            self.images = images.new_empty((self.size, *images.shape[1:]))
        elif self.images.shape[1:] != images.shape[1:]:
            raise ValueError(f"the pool holds images of shape {tuple(self.images.shape[1:])}, "
                             f"got a batch of {tuple(images.shape)}")
        elif self.images.device != images.device or self.images.dtype != images.dtype:
            self.images = self.images.to(device=images.device, dtype=images.dtype)  # e.g. after resume
        out = images.clone()
        g = self.generator
        for i in range(images.shape[0]):
            if self.count < self.size:  # filling: store and return the new image
                self.images[self.count] = images[i]
                self.count += 1
            elif torch.rand((), generator=g, device=g.device).item() < 0.5:  # swap with a stored image
                j = int(torch.randint(self.size, (), generator=g, device=g.device))
                out[i] = self.images[j]
                self.images[j] = images[i]
        return out  # (B, ...)

    def state_dict(self) -> dict:
        stored = None if self.images is None else self.images[:self.count].clone()
        return {"size": self.size, "count": self.count, "images": stored,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if int(state["size"]) != self.size:
            raise ValueError(f"pool state of size {state['size']} cannot be loaded into a pool of size {self.size}")
        self.count = int(state["count"])
        stored = state["images"]
        if stored is None:
            self.images = None
        else:  # moved to the device of the next batch by query()
            self.images = stored.new_empty((self.size, *stored.shape[1:]))
            self.images[:self.count] = stored
        self.generator.set_state(state["generator"])


__all__ = ["ImagePool"]
