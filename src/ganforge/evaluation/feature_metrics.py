"""Metrics on features of the model's outputs against features of the reference images."""

from __future__ import annotations

from ..errors import EvalError
from ..metrics import fid_from_features, inception_score_from_probs, kid_from_features, prdc
from ..metrics.fid import FID
from ..metrics.inception_score import IS_MEAN, IS_STD
from ..metrics.kid import KID_MEAN, KID_STD
from ..metrics.prdc import COVERAGE, DENSITY, PRECISION, RECALL
from .registry import Metric, register_metric


def _pair(ctx):
    real, _, _ = ctx.reference()
    fake, _ = ctx.fake_features()
    return real, fake


def _prdc(ctx) -> dict:
    """Precision/recall with k = 3 and density/coverage with k = 5, computed once for both metrics."""
    return ctx._once("prdc", lambda: prdc(*_pair(ctx), nearest_k=5, pr_nearest_k=3))


@register_metric("fid")
class FIDMetric(Metric):
    """Fréchet distance between Gaussians fitted to the two feature sets."""
    needs = ("images",)

    def compute(self, ctx):
        return {FID: fid_from_features(*_pair(ctx))}


@register_metric("kid")
class KIDMetric(Metric):
    """Kernel distance: unbiased polynomial MMD^2, mean and std over 100 subsets of up to 1000."""
    needs = ("images",)

    def compute(self, ctx):
        real, fake = _pair(ctx)
        mean, std = kid_from_features(real, fake, subset_size=min(1000, len(real), len(fake)), seed=ctx.seed)
        return {KID_MEAN: mean, KID_STD: std}


@register_metric("pr")
class PrecisionRecall(Metric):
    """Improved precision and recall (k = 3 nearest neighbours)."""
    needs = ("images",)

    def compute(self, ctx):
        res = _prdc(ctx)
        return {PRECISION: res[PRECISION], RECALL: res[RECALL]}


@register_metric("dc")
class DensityCoverage(Metric):
    """Density and coverage (k = 5 nearest neighbours)."""
    needs = ("images",)

    def compute(self, ctx):
        res = _prdc(ctx)
        return {DENSITY: res[DENSITY], COVERAGE: res[COVERAGE]}


@register_metric("is")
class InceptionScore(Metric):
    """Inception-Score-style score from the extractor's class probabilities (10 splits)."""
    needs = ("images",)

    def compute(self, ctx):
        _, probs = ctx.fake_features()
        if probs.shape[1] == 0:
            raise EvalError("the 'is' metric needs an extractor with class probabilities")
        mean, std = inception_score_from_probs(probs, splits=10)
        return {IS_MEAN: mean, IS_STD: std}
