"""Mode-collapse metrics (docs/protocols.md sections 1 and 2).

2-D mixtures (PacGAN / VEEGAN protocol), :func:`mode_metrics`:

- a sample is *high quality* (HQ) if its Euclidean distance to the nearest mode mean is at most
  ``3 * std`` (``<=``; the boundary has probability zero for continuous samples);
- modes captured = number of modes with at least one HQ sample assigned to them;
- reverse KL = sum_k p_k log(p_k K), with p the histogram of HQ samples over the K modes
  (0 log 0 = 0). It is 0 for a perfectly balanced histogram and log K when all HQ samples sit on
  one mode. When there is no HQ sample at all the histogram is undefined; we report log K, the
  worst value any histogram can have, so that "nothing near any mode" never looks better than
  "everything on one mode".

Stacked (Fashion-)MNIST (1000 modes), :func:`stacked_mode_metrics`: a mode is the tuple of
classes of the stacked channels; modes = number of distinct tuples among the samples and
KL = sum over observed tuples of p log(p * C^M) (C classes, M channels; C^M = 1000 for 3 channels
of 10 classes), i.e. KL(p_hat || uniform over all C^M tuples).

All computations are in float64.
"""

from __future__ import annotations

import math

import torch

from .fid import as_features

MODES = "modes"  # result keys
HQ_FRACTION = "hq_fraction"
REVERSE_KL = "reverse_kl"
KL = "kl"


def _kl_to_uniform(counts: torch.Tensor, num_modes: int) -> float:
    """sum_k p_k log(p_k * num_modes) for the histogram ``counts`` (0 log 0 = 0)."""
    p = counts.to(torch.float64) / counts.sum()
    return float(torch.xlogy(p, p * num_modes).sum())


def mode_metrics(samples, means, std: float, *, threshold_stds: float = 3.0) -> dict[str, float]:
    """Modes captured, fraction of high-quality samples and reverse KL for a Gaussian mixture.

    Args:
        samples: (N, D) generated samples.
        means: (K, D) the mixture's mode means.
        std: the (isotropic) standard deviation of each mode.
        threshold_stds: a sample is high quality within ``threshold_stds * std`` of its
            nearest mode (3 in the protocol).

    Returns:
        ``{"modes": int, "hq_fraction": float in [0, 1], "reverse_kl": float}`` (see the module
        docstring; reverse_kl is log K when there is no HQ sample).
    """
    x = as_features(samples, "samples")  # (N, D)
    mu = as_features(means, "means").to(x.device)  # (K, D)
    if x.shape[1] != mu.shape[1]:
        raise ValueError(f"samples have {x.shape[1]} dimensions but means have {mu.shape[1]}")
    if x.shape[0] < 1 or mu.shape[0] < 1:
        raise ValueError("need at least one sample and one mode")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std!r}")
    k = mu.shape[0]
    dist = torch.cdist(x, mu, compute_mode="donot_use_mm_for_euclid_dist")  # (N, K), exact form
    nearest_dist, nearest = dist.min(dim=1)  # (N,)
    hq = nearest_dist <= threshold_stds * std
    counts = torch.bincount(nearest[hq], minlength=k)  # (K,)
    n_hq = int(hq.sum())
    return {
        MODES: int((counts > 0).sum()),
        HQ_FRACTION: n_hq / x.shape[0],
        REVERSE_KL: _kl_to_uniform(counts, k) if n_hq > 0 else math.log(k),
    }


def stacked_mode_metrics(class_triples, num_classes: int = 10) -> dict[str, float]:
    """Modes and KL for the stacked protocol from per-channel predicted classes.

    Args:
        class_triples: (N, M) integer classes in [0, num_classes), one column per stacked
            channel (M = 3 in the protocol, giving num_classes^3 = 1000 modes).
        num_classes: classes per channel.

    Returns:
        ``{"modes": int, "kl": float}`` with modes the number of distinct tuples and
        kl = sum over observed tuples of p log(p * num_classes^M).
    """
    c = torch.as_tensor(class_triples)
    if c.dim() != 2 or c.shape[0] < 1 or c.shape[1] < 1:
        raise ValueError(f"class_triples must have shape (N, M), N, M >= 1, got {tuple(c.shape)}")
    if c.is_floating_point() or c.is_complex() or c.dtype == torch.bool:
        raise TypeError(f"class_triples must be integers, got {c.dtype}")
    if int(c.min()) < 0 or int(c.max()) >= num_classes:
        raise ValueError(f"classes must lie in [0, {num_classes}), "
                         f"got values in [{int(c.min())}, {int(c.max())}]")
    c = c.to(torch.int64)
    num_modes = num_classes ** c.shape[1]
    place = num_classes ** torch.arange(c.shape[1] - 1, -1, -1, device=c.device)  # (M,)
    _, counts = torch.unique((c * place).sum(dim=1), return_counts=True)  # one code per tuple
    return {MODES: int(counts.numel()), KL: _kl_to_uniform(counts, num_modes)}
