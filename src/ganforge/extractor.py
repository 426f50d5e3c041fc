"""The feature-extractor interface and its registry (the networks that metrics see images through).

Concrete extractors live in :mod:`ganforge.features` (the shipped Fashion-MNIST classifier) and
:mod:`ganforge.inception` (the FID InceptionV3); both register themselves in :data:`FEATURES`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .registry import Registry


class FeatureExtractor:
    """Base of registered extractors: preprocessing, one-batch and many-batch extraction.

    Subclasses set ``name``, ``dim``, ``num_classes``, ``input_size``, ``input_channels``,
    ``sha256`` and implement :meth:`_forward` on preprocessed input.
    """

    name: str = ""
    dim: int = 0  # feature dimension
    num_classes: int = 0  # length of the probability vectors
    input_size: int = 0  # images are resized to input_size x input_size
    input_channels: int = 1
    sha256: str = ""  # of the weights file

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    def preprocess(self, images: Tensor) -> Tensor:
        """``(B, C, H, W)`` images -> float ``(B, input_channels, input_size, input_size)`` on
        the device. uint8 input is mapped from [0, 255] to [-1, 1]; float input is taken to be
        in [-1, 1] already (not clamped). RGB -> gray is the mean of the three channels; gray ->
        RGB repeats the channel. Other sizes are resized with antialiased bilinear interpolation.
        """
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"{self.name}: expected images (B, 1 or 3, H, W), got {tuple(images.shape)}")
        x = images.to(self.device)
        x = x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.float()
        if x.shape[1] != self.input_channels:
            x = x.mean(1, keepdim=True) if self.input_channels == 1 else x.expand(-1, 3, -1, -1)
        s = self.input_size
        if tuple(x.shape[2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        return x

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """One batch -> ``(features (B, dim), probs (B, num_classes))``, float32 on the device."""
        return self._forward(self.preprocess(images))

    @torch.no_grad()
    def extract(self, images: Tensor, *, batch_size: int = 500,
                progress: bool | None = None) -> tuple[Tensor, Tensor]:
        """Any number of images (uint8 or [-1, 1] floats, on any device) -> ``(features, probs)``
        as float32 CPU tensors, in batches of ``batch_size``. ``progress`` None shows a tqdm bar
        when there are more than 10 batches."""
        from tqdm.auto import tqdm

        n = images.shape[0]
        starts = range(0, n, batch_size)
        show = progress if progress is not None else len(starts) > 10
        feats, probs = [], []
        for i in tqdm(starts, desc=f"{self.name} features", unit="batch", disable=not show,
                      leave=False):
            f, p = self(images[i:i + batch_size])
            feats.append(f.cpu())
            probs.append(p.cpu())
        if not feats:
            return torch.empty(0, self.dim), torch.empty(0, self.num_classes)
        return torch.cat(feats), torch.cat(probs)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, "
                f"num_classes={self.num_classes}, device={str(self.device)!r})")


FEATURES = Registry("feature extractor",
                    check=lambda obj: isinstance(obj, type) and issubclass(obj, FeatureExtractor))
