"""Perceptual distances between images, for latent projection and perceptual path length.

- :class:`FeatureDistance` (offline, always available): the squared L2 distance between the
  unit-normalised 128-d penultimate features of the shipped Fashion-MNIST classifier
  (:class:`ganforge.features.FmnistNet`); RGB images are averaged to gray and resized to 28x28 by
  the extractor's own preprocessing. Differentiable in the images. It ranges over [0, 2] (the
  features are non-negative). It knows clothing, not faces: on other data it is a generic
  small-CNN distance, and its values are comparable only between runs measured with it.
- :func:`lpips_distance`: LPIPS (Zhang et al. 2018) from the ``lpips`` package, **only** when the
  package and every weight file it needs are already on disk: its calibrated linear layers (shipped
  inside the package) and the torchvision backbone checkpoint in torch's hub cache. Nothing is
  downloaded; a missing piece is a :class:`~ganforge.errors.WeightsError` naming it. Every file is
  read with ``torch.load(..., weights_only=True)`` (no unpickling of code).
- :func:`best_distance`: LPIPS when available, else the feature distance; its ``description``
  says which was used (written into evaluation provenance).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import WeightsError

EPS = 1e-10  # added to feature norms before dividing
MIN_LPIPS_SIZE = 64  # smaller images are upsampled (bilinear) to this shorter side before LPIPS


class FeatureDistance:
    """``d(a, b)`` (B,) = || f(a) / |f(a)| - f(b) / |f(b)| ||^2 with f the Fashion-MNIST classifier's
    penultimate features; ``a``, ``b`` (B, C, H, W) in [-1, 1]. Gradients flow to the images."""

    def __init__(self, extractor=None, device: str | torch.device = "cpu"):
        if extractor is None:
            from .features import get_feature_extractor
            extractor = get_feature_extractor("fmnist", device=device)
        self.extractor = extractor
        self.description = (f"fmnist-features: squared L2 of unit-normalised {extractor.dim}-d penultimate "
                            f"features of the shipped Fashion-MNIST classifier (sha256 {extractor.sha256[:12]})")

    def features(self, x: Tensor) -> Tensor:
        f, _ = self.extractor.net.features_and_logits(self.extractor.preprocess(x))  # (B, dim)
        return f / (f.norm(dim=1, keepdim=True) + EPS)

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        return (self.features(a) - self.features(b)).square().sum(1)  # (B,)


def _backbone_file(net: str) -> Path:
    """Where torchvision keeps the ImageNet checkpoint LPIPS's backbone ``net`` loads."""
    import torchvision.models as tvm
    weights = {"alex": tvm.AlexNet_Weights, "vgg": tvm.VGG16_Weights, "squeeze": tvm.SqueezeNet1_1_Weights}[net]
    url = weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


class LpipsDistance:
    """LPIPS (version 0.1) built from local files only; ``d(a, b)`` (B,) for images in [-1, 1]
    (gray images are repeated to RGB; images under 64 px are upsampled to 64 px first)."""

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu"):
        if net not in ("alex", "vgg", "squeeze"):
            raise WeightsError(f"unknown LPIPS network '{net}'; choose from alex, vgg, squeeze")
        try:
            import lpips
        except ImportError:
            raise WeightsError("LPIPS needs the lpips package (pip install 'ganforge[lpips]')") from None
        linear = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
        backbone = _backbone_file(net)
        for what, path in (("LPIPS linear weights", linear), ("LPIPS backbone weights", backbone)):
            if not path.is_file():
                raise WeightsError(f"{what} not found at {path} (ganforge never downloads them)")
        import warnings
        with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained`
            warnings.simplefilter("ignore")
            model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
        tv = torch.load(backbone, map_location="cpu", weights_only=True)
        try:  # lpips splits torchvision's `features` into slices that keep the layer indices as names
            state = {name: tv[f"features.{name.split('.', 1)[1]}"] for name, _ in model.net.named_parameters()}
            model.net.load_state_dict(state)
            model.load_state_dict(torch.load(linear, map_location="cpu", weights_only=True), strict=False)
        except (KeyError, RuntimeError) as e:
            raise WeightsError(f"cannot build LPIPS-{net} from {backbone} and {linear}: {e}") from None
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.description = f"lpips-{net} v0.1 (local weights {linear.name}, {backbone.name})"

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        a, b = (x.to(self.device).float() for x in (a, b))
        if a.shape[1] == 1:
            a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
        if min(a.shape[2:]) < MIN_LPIPS_SIZE:  # AlexNet's pooling needs room
            size = [MIN_LPIPS_SIZE * s // min(a.shape[2:]) for s in a.shape[2:]]
            a, b = (F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in (a, b))
        return self.model(a, b).reshape(-1)  # (B,)


def lpips_distance(net: str = "alex", device: str | torch.device = "cpu") -> LpipsDistance:
    return LpipsDistance(net, device)


def best_distance(device: str | torch.device = "cpu"):
    """LPIPS-alex when it can be built from local files, otherwise :class:`FeatureDistance`."""
    try:
        return LpipsDistance("alex", device)
    except WeightsError:
        return FeatureDistance(device=device)


__all__ = ["FeatureDistance", "LpipsDistance", "best_distance", "lpips_distance"]
