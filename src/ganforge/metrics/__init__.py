"""Metric maths: pure functions of features (no sampling, no feature extraction, no I/O).

- :mod:`.fid`: :func:`fid_from_stats`, :func:`fid_from_features`, :class:`FeatureStats`
- :mod:`.kid`: :func:`kid_from_features`, :func:`polynomial_mmd2`
- :mod:`.prdc`: :func:`prdc` (precision, recall, density, coverage)
- :mod:`.inception_score`: :func:`inception_score_from_probs`
- :mod:`.modes`: :func:`mode_metrics` (2-D mixtures), :func:`stacked_mode_metrics`

:data:`METRICS` maps a metric name to a function ``(real_features, fake_features, **options) ->
dict`` whose keys are the module-level constants (``FID``, ``KID_MEAN``, ...), so that evaluation
code picks metrics by name::

    results = {}
    for name in ("fid", "kid", "prdc"):
        results.update(METRICS.get(name)(real_features, fake_features))

The mode metrics need the mixture (means, std) or class predictions rather than a pair of
feature sets, so they are plain functions and not in the registry.
"""

from __future__ import annotations

from ..registry import Registry
from .fid import FID, FeatureStats, fid_from_feature_stats, fid_from_features, fid_from_stats
from .inception_score import IS_MEAN, IS_STD, inception_score_from_probs
from .kid import KID_MEAN, KID_STD, kid_from_features, polynomial_kernel, polynomial_mmd2
from .modes import HQ_FRACTION, KL, MODES, REVERSE_KL, mode_metrics, stacked_mode_metrics
from .prdc import COVERAGE, DENSITY, PRECISION, RECALL, prdc

METRICS = Registry("metric", check=callable)


@METRICS.register("fid")
def _fid(real_features, fake_features) -> dict[str, float]:
    """Fréchet distance between Gaussians fitted to the two feature sets."""
    return {FID: fid_from_features(real_features, fake_features)}


@METRICS.register("kid")
def _kid(real_features, fake_features, **options) -> dict[str, float]:
    """Kernel distance: unbiased polynomial MMD^2, mean and std over 100 subsets of 1000."""
    mean, std = kid_from_features(real_features, fake_features, **options)
    return {KID_MEAN: mean, KID_STD: std}


@METRICS.register("prdc")
def _prdc(real_features, fake_features, *, pr_nearest_k: int = 3, nearest_k: int = 5,
          **options) -> dict[str, float]:
    """Precision/recall (k = 3) and density/coverage (k = 5) from k-NN balls."""
    return prdc(real_features, fake_features, nearest_k=nearest_k, pr_nearest_k=pr_nearest_k,
                **options)


@METRICS.register("inception_score")
def _inception_score(real_features, fake_features, *, splits: int = 10) -> dict[str, float]:
    """Inception-Score-style score; fake_features are class probabilities, real ones unused."""
    mean, std = inception_score_from_probs(fake_features, splits=splits)
    return {IS_MEAN: mean, IS_STD: std}


__all__ = [
    "METRICS",
    "FID", "KID_MEAN", "KID_STD", "PRECISION", "RECALL", "DENSITY", "COVERAGE",
    "IS_MEAN", "IS_STD", "MODES", "HQ_FRACTION", "REVERSE_KL", "KL",
    "FeatureStats", "fid_from_stats", "fid_from_feature_stats", "fid_from_features",
    "kid_from_features", "polynomial_kernel", "polynomial_mmd2",
    "prdc", "inception_score_from_probs", "mode_metrics", "stacked_mode_metrics",
]
