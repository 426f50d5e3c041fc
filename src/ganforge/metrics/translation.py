"""Scores of multi-domain translation (StarGAN-style), pure functions of classifier outputs.

For a translation ``fake = G(x, target)``:

- **target-domain accuracy**: how often a domain classifier puts ``fake`` in ``target``
  (:func:`domain_accuracy`);
- **content preservation**: how often a content classifier still gives ``fake`` the class of
  ``x`` (:func:`content_accuracy`). For fmnist-domains the content classifier is the shipped
  Fashion-MNIST classifier applied to ``from_domain(fake, target)`` (the domain's transform
  undone), see :mod:`ganforge.data.multidomain`.
"""

from __future__ import annotations

from torch import Tensor

DOMAIN_ACCURACY = "domain_accuracy"
CONTENT_ACCURACY = "content_accuracy"


def domain_accuracy(logits: Tensor, target: Tensor) -> float:
    """Class indices (N,): the fraction of rows whose arg-max logit is the target. Multi-hot
    (N, K) float targets: the fraction of (row, attribute) pairs with sign(logit) = target
    (logit > 0 means the attribute is present)."""
    if logits.dim() != 2 or logits.shape[0] != target.shape[0]:
        raise ValueError(f"logits (N, K) and targets (N,) or (N, K) needed, got {tuple(logits.shape)}, "
                         f"{tuple(target.shape)}")
    if target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(f"attribute targets must be {tuple(logits.shape)}, got {tuple(target.shape)}")
        return ((logits > 0) == (target > 0.5)).float().mean().item()
    return (logits.argmax(1) == target.long()).float().mean().item()


def content_accuracy(logits: Tensor, labels: Tensor) -> float:
    """The fraction of rows whose arg-max class logit is the source image's class."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits (N, K) and labels (N,) needed, got {tuple(logits.shape)}, {tuple(labels.shape)}")
    return (logits.argmax(1) == labels.long()).float().mean().item()


__all__ = ["CONTENT_ACCURACY", "DOMAIN_ACCURACY", "content_accuracy", "domain_accuracy"]
