"""Metrics of class-conditional generators: does a sample show its class, and how well is each
class's distribution matched."""

from __future__ import annotations

import torch

from ..errors import EvalError
from ..metrics import fid_from_features
from .registry import Metric, register_metric


def _per_class(ctx) -> dict:
    """For each class k: the extractor's features and predictions of ``n // K`` samples of k."""
    def make():
        g, ext = ctx.model, ctx.extractor()
        if not ext.num_classes or ext.num_classes != g.num_classes:
            raise EvalError(f"the {ext.name} extractor classifies {ext.num_classes} classes, "
                            f"the model has {g.num_classes}")
        per = ctx.n // g.num_classes
        if per < 2:
            raise EvalError(f"--n {ctx.n} gives fewer than 2 samples per class")
        out = {}
        with torch.no_grad():
            for k in range(g.num_classes):
                x = g.sample(per, seed=ctx.seed * 1_000_003 + k, labels=k)
                f, p = ext.extract(x, progress=False)
                out[k] = (f, p.argmax(1))
        return out
    return ctx._once("per_class", make)


@register_metric("acc")
class ClassAccuracy(Metric):
    """Accuracy of the extractor's classifier on n // K samples of each of the K classes."""
    needs = ("images", "classes")

    def compute(self, ctx):
        res = _per_class(ctx)
        correct = sum(int((pred == k).sum()) for k, (_, pred) in res.items())
        return {"acc": correct / sum(len(pred) for _, pred in res.values())}


@register_metric("ifid")
class IntraClassFID(Metric):
    """Intra-class FID: the mean over classes of the FID between a class's samples and the
    reference images of that class (``ifid_<k>`` per class)."""
    needs = ("images", "classes")

    def compute(self, ctx):
        res = _per_class(ctx)
        real, _, _ = ctx.reference()
        labels = ctx.split().labels
        if labels is None:
            raise EvalError(f"the reference {ctx.ref} has no labels")
        out = {f"ifid_{k}": fid_from_features(real[labels == k], f) for k, (f, _) in res.items()}
        return {"ifid": sum(out.values()) / len(out), **out}


@register_metric("modes")
class ModeCoverage(Metric):
    """Mode coverage of toy mixtures (modes, % high quality, reverse KL) and of stacked
    Fashion-MNIST (1000 class triples, KL)."""
    needs = ("modes",)

    def compute(self, ctx):
        from ..data import dataset
        modes = dataset(ctx.model.cfg.data.name).modes
        return dict(modes(lambda k, s: ctx.model.sample(k, seed=s), ctx.n, ctx.seed))
