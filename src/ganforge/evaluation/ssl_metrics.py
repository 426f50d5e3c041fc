"""Metrics of semi-supervised models, whose product is D, a classifier: its accuracy on the test
split, and a linear probe on its features (how linearly separable the classes are in them)."""

from __future__ import annotations

from ..errors import EvalError
from ..metrics.linear_probe import LINEAR_PROBE, linear_probe_accuracy
from .registry import Metric, register_metric

TEST_ACC = "test_acc"


def _labelled(ctx, split) -> tuple:
    """The first ``ctx.n`` images of the reference's ``split`` in [-1, 1], and their labels."""
    from ..data import load_reference, parse_ref
    name, _ = parse_ref(ctx.ref)
    sp = ctx.split() if split is None else ctx._once(f"split:{split}", lambda: load_reference(f"{name}:{split}"))
    if sp.labels is None:
        raise EvalError(f"the reference {name} has no labels")
    return sp.images[:ctx.n].float().div(127.5).sub(1), sp.labels[:ctx.n]


@register_metric("test_acc")
class TestAccuracy(Metric):
    """Accuracy of D's K-class prediction on the first n test images (the semi-supervised result)."""
    needs = ("classifier",)

    def compute(self, ctx):
        x, y = _labelled(ctx, None)
        logits, _ = ctx._once("classified:test", lambda: ctx.task.classify(ctx.model, x))
        return {TEST_ACC: (logits.argmax(1) == y).float().mean().item()}


@register_metric("linear_probe")
class LinearProbe(Metric):
    """Logistic regression on D's features, fit on the first n training images with their labels,
    scored (accuracy) on the first n test images."""
    needs = ("classifier",)

    def compute(self, ctx):
        x, y = _labelled(ctx, None)
        tx, ty = _labelled(ctx, "train")
        _, feats = ctx._once("classified:test", lambda: ctx.task.classify(ctx.model, x))
        _, train_feats = ctx.task.classify(ctx.model, tx)
        k = int(max(y.max(), ty.max())) + 1
        return {LINEAR_PROBE: linear_probe_accuracy(train_feats, ty, feats, y, num_classes=k)}
