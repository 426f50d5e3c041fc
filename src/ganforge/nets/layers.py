"""Blocks shared by the network families."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

NORMS = ("bn", "ln", "in", "none")


def norm2d(kind: str, channels: int) -> nn.Module:
    """A 2-D normalisation layer: batch, layer (over C, H, W), instance, or none."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "ln":
        return nn.GroupNorm(1, channels)
    if kind == "in":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}'; choose from {', '.join(NORMS)}")


def norm1d(kind: str, features: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm1d(features)
    if kind == "ln":
        return nn.LayerNorm(features)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}'; choose from bn, ln, none")


def maybe_sn(layer: nn.Module, enabled: bool) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) through PyTorch's parametrization."""
    return spectral_norm(layer) if enabled else layer


def activation(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind.startswith("lrelu"):
        slope = float(kind[len("lrelu"):] or 0.2)
        return nn.LeakyReLU(slope)
    if kind == "tanh":
        return nn.Tanh()
    if kind in ("none", "linear"):
        return nn.Identity()
    raise ValueError(f"unknown activation '{kind}'; use relu, lrelu[slope], tanh or none")
