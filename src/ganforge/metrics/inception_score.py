"""Inception-Score-style score (Salimans et al. 2016) from a classifier's class probabilities:

    IS = exp( E_x KL( p(y | x) || p(y) ) ),   p(y) = E_x p(y | x),

computed on ``splits`` consecutive groups of samples; the result is the mean and standard
deviation over groups. It is 1 when every prediction is the same distribution and C (the
number of classes) when predictions are confident and spread evenly over C classes.

Conventions (those of torch-fidelity's ``isc_features_to_metric`` with ``samples_shuffle=False``):

- group i is ``probs[i * N // splits : (i + 1) * N // splits]``;
- the standard deviation is the population one (ddof 0), as in torch-fidelity and the original
  Inception Score code;
- samples are not shuffled (torch-fidelity shuffles by default, torchmetrics always does); shuffle
  beforehand if your samples are ordered, e.g. by class.

torchmetrics differs in two details: it splits with ``torch.chunk`` (the same groups when
``splits`` divides N) and reports the sample standard deviation (ddof 1).

Computed in float64, with 0 log 0 = 0 (``torch.xlogy``), so exactly-zero probabilities are fine.
"""

from __future__ import annotations

import math

import torch

from .fid import as_features

IS_MEAN = "is_mean"  # result keys
IS_STD = "is_std"


def inception_score_from_probs(probs, splits: int = 10, *,
                               atol: float = 1e-3) -> tuple[float, float]:
    """Mean and standard deviation of the Inception Score over ``splits`` groups.

    Args:
        probs: (N, C) class probabilities p(y | x) (rows non-negative, summing to 1 within
            ``atol``), e.g. ``logits.softmax(dim=1)``.
        splits: number of consecutive groups (1 <= splits <= N).
        atol: tolerance on the row sums.

    Returns:
        ``(mean, std)`` as Python floats (std with ddof 0; 0.0 when ``splits == 1``).
    """
    p = as_features(probs, "probs")  # (N, C)
    n = p.shape[0]
    if not isinstance(splits, int) or not 1 <= splits <= n:
        raise ValueError(f"splits must be an integer in [1, N={n}], got {splits!r}")
    if not torch.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs must be finite and non-negative (pass probabilities, not logits)")
    worst = (p.sum(dim=1) - 1).abs().max()
    if worst > atol:
        raise ValueError(f"rows of probs must sum to 1 (largest deviation {float(worst):.3g}); "
                         "pass probabilities, not logits")
    scores = []
    for i in range(splits):
        group = p[i * n // splits:(i + 1) * n // splits]  # (n_i, C)
        marginal = group.mean(dim=0, keepdim=True)  # (1, C)
        kl = (torch.xlogy(group, group) - torch.xlogy(group, marginal)).sum(dim=1)  # (n_i,)
        scores.append(math.exp(float(kl.mean())))
    s = torch.tensor(scores, dtype=torch.float64)
    return float(s.mean()), float(s.std(correction=0))
