"""Semi-supervised GAN losses (Salimans et al. 2016, "Improved techniques for training GANs", sec. 5
and 3.1), as pure functions with keyword-only arguments. Every function returns a scalar that its
player **minimises**.

The discriminator is a K-class classifier with logits l_1..l_K (B, K); the (K+1)-th class,
"generated", has its logit fixed at 0 (the paper's over-parametrisation removed). Then

    p(y = k | x) = exp(l_k) / (Z(x) + 1),  Z(x) = sum_k exp(l_k),
    D(x) = p(real | x) = Z(x) / (Z(x) + 1) = sigmoid(logsumexp_k l_k).

So ``logsumexp(l)`` plays the role of an ordinary GAN's real/fake logit, and everything is
computed from it with softplus, never from Z itself (no overflow for large logits):

    -log D(x)       = softplus(-logsumexp(l))
    -log(1 - D(x))  = softplus(logsumexp(l))

D minimises ``L_supervised + unsup_weight * L_unsupervised``:

- :func:`ssl_supervised`: cross-entropy of the K real classes on labelled data, -log p(y | x, y <= K);
- :func:`ssl_unsupervised`: -E log D(x_unlabelled) - E log(1 - D(G(z))); it needs no labels.

G minimises :func:`feature_matching` (the paper's choice for semi-supervised learning) or
:func:`ssl_g_nonsaturating`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_logits(name: str, logits: Tensor) -> None:
    if logits.dim() != 2 or logits.shape[1] < 1:
        raise ValueError(f"{name} must be (B, K) class logits, got shape {tuple(logits.shape)}")


def real_logit(logits: Tensor) -> Tensor:
    """The logit of D(x) = P(real | x): logsumexp of the K class logits, (B, K) -> (B,)."""
    _check_logits("logits", logits)
    return torch.logsumexp(logits, dim=1)


def ssl_probabilities(logits: Tensor) -> Tensor:
    """The K+1 class probabilities (B, K + 1), the last one "generated" (its logit fixed at 0)."""
    _check_logits("logits", logits)
    return torch.softmax(torch.cat([logits, logits.new_zeros(logits.shape[0], 1)], 1), dim=1)


def ssl_supervised(*, logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy over the K real classes on labelled samples: E[-log softmax(l)_y]. Conditioning
    on "real" removes the fixed fake logit: p(y | x, y <= K) = exp(l_y) / Z(x)."""
    _check_logits("logits", logits)
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must be ({logits.shape[0]},), got {tuple(labels.shape)}")
    return F.cross_entropy(logits, labels.long())


def ssl_unsupervised(*, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] with D = sigmoid(logsumexp(l)):
    E[softplus(-lse(real_logits))] + E[softplus(lse(fake_logits))]. Both (B, K), unlabelled."""
    return F.softplus(-real_logit(real_logits)).mean() + F.softplus(real_logit(fake_logits)).mean()


def ssl_d_loss(*, labelled_logits: Tensor, labels: Tensor, real_logits: Tensor, fake_logits: Tensor,
               unsup_weight: float = 1.0) -> Tensor:
    """D's whole loss: ssl_supervised + unsup_weight * ssl_unsupervised (the paper: weight 1)."""
    return (ssl_supervised(logits=labelled_logits, labels=labels)
            + unsup_weight * ssl_unsupervised(real_logits=real_logits, fake_logits=fake_logits))


def ssl_g_nonsaturating(*, fake_logits: Tensor) -> Tensor:
    """-E[log D(G(z))] = E[softplus(-lse(fake_logits))]."""
    return F.softplus(-real_logit(fake_logits)).mean()


def feature_matching(*, real_features: Tensor, fake_features: Tensor) -> Tensor:
    """||E f(x) - E f(G(z))||_2^2 (sec. 3.1): the squared Euclidean distance between the batch
    means of an intermediate D layer's features (B, ...) on real and generated data. The real
    features are a fixed target (detached); G gets its gradient through the fake ones."""
    if real_features.shape[1:] != fake_features.shape[1:]:
        raise ValueError(f"feature shapes differ: {tuple(real_features.shape)} vs {tuple(fake_features.shape)}")
    diff = real_features.detach().flatten(1).mean(0) - fake_features.flatten(1).mean(0)  # (features,)
    return diff.pow(2).sum()


__all__ = ["feature_matching", "real_logit", "ssl_d_loss", "ssl_g_nonsaturating", "ssl_probabilities",
           "ssl_supervised", "ssl_unsupervised"]
