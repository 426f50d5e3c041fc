"""The non-adversarial StarGAN terms (Choi et al. 2018, eq. 2-4), as pure functions minimised by
their player; the adversarial term is any of :data:`ganforge.losses.LOSSES` (the paper: WGAN-GP).

- D minimises ``adv + lambda_cls * domain_classification_loss(D_cls(x_real), c_source)``;
- G minimises ``adv + lambda_cls * domain_classification_loss(D_cls(G(x, c_target)), c_target)
  + lambda_rec * reconstruction_loss(x, G(G(x, c_target), c_source))``; the paper: lambda_cls 1,
  lambda_rec 10.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def domain_classification_loss(*, logits: Tensor, target: Tensor) -> Tensor:
    """Domain logits (B, K) against the true domains: class indices (B,) -> softmax cross-entropy
    (one domain per image); float (B, K) multi-hot attributes -> the sum over the K attributes of
    the binary cross-entropy, averaged over the batch (as the StarGAN code does for CelebA)."""
    if logits.dim() != 2:
        raise ValueError(f"domain logits must be (B, K), got shape {tuple(logits.shape)}")
    if target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(f"attribute targets must be {tuple(logits.shape)}, got {tuple(target.shape)}")
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[0]
    return F.cross_entropy(logits, target.long())


def reconstruction_loss(*, real: Tensor, reconstructed: Tensor) -> Tensor:
    """The cycle term E|x - G(G(x, c_target), c_source)|_1, the mean absolute difference per pixel."""
    return (real - reconstructed).abs().mean()


__all__ = ["domain_classification_loss", "reconstruction_loss"]
