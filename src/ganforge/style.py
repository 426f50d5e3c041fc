"""Style loss (Gatys et al. 2016): the distance between Gram matrices of feature maps.

The Gram matrix of a feature map F (C, H, W), reshaped to (C, N) with N = H * W, is
G = F F^T / (C * H * W): the channel-by-channel correlations, normalised so that its scale does
not depend on the layer's size. The style loss over a list of layers is

    sum_l  weight_l * mean_{b, i, j} (G_l(fake)_bij - G_l(style)_bij)^2,

a pure function of the feature maps (the feature extractor, e.g. a VGG, is the caller's).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def gram_matrix(features: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, C): F F^T / (C * H * W), F the (C, H * W) reshaped map of each sample."""
    if features.dim() != 4:
        raise ValueError(f"features must be (B, C, H, W), got shape {tuple(features.shape)}")
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)  # (B, C, N)
    return f @ f.transpose(1, 2) / (c * h * w)  # (B, C, C)


def style_loss(*, fake_features: Sequence[Tensor], style_features: Sequence[Tensor],
               weights: Sequence[float] | None = None) -> Tensor:
    """Weighted sum over layers of the mean squared difference of Gram matrices (minimised by the
    generator). ``style_features[l]`` may have batch size 1 (one style image for the whole batch)
    or the batch size of ``fake_features[l]``; it is a fixed target (detached)."""
    if len(fake_features) != len(style_features) or not fake_features:
        raise ValueError(f"need one style feature map per fake one, got {len(fake_features)} and {len(style_features)}")
    weights = [1.0] * len(fake_features) if weights is None else list(weights)
    if len(weights) != len(fake_features):
        raise ValueError(f"{len(weights)} weights for {len(fake_features)} layers")
    total = None
    for fake, style, w in zip(fake_features, style_features, weights):
        g_fake, g_style = gram_matrix(fake), gram_matrix(style.detach())
        if g_style.shape[0] not in (1, g_fake.shape[0]) or g_style.shape[1:] != g_fake.shape[1:]:
            raise ValueError(f"style features {tuple(style.shape)} do not match fake features {tuple(fake.shape)}")
        term = w * (g_fake - g_style).pow(2).mean()
        total = term if total is None else total + term
    return total


__all__ = ["gram_matrix", "style_loss"]
