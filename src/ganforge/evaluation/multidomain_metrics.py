"""Metrics of multi-domain translation (StarGAN): the first n reference images translated to random
target domains (:meth:`ganforge.tasks.multidomain.MultiDomainTask.translations`), judged by

- ``domain_acc``: a post-hoc domain classifier (logistic regression on the pixels, at most 32 px,
  fit on 80% of the reference's real images with their domains) on the translations and their
  targets; ``domain_accuracy_real`` is its accuracy on the other 20% of the real images, the judge's
  own quality;
- ``content_acc``: the dataset's content classifier on the translations seen in their canonical
  view (fmnist-domains: the shipped Fashion-MNIST classifier after undoing the target domain's
  transform) against the source images' classes; ``content_accuracy_real`` is the same on the
  untranslated sources (the ceiling);
- ``fid_domains``: per target domain k, FID between the translations to k and the reference images
  of domain k (``fid_<domain>``), and their mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import EvalError
from ..metrics.fid import fid_from_features
from ..metrics.linear_probe import fit_logistic_regression, predict
from ..metrics.translation import CONTENT_ACCURACY, DOMAIN_ACCURACY, content_accuracy, domain_accuracy
from .registry import Metric, register_metric

JUDGE_IMAGES = 4000  # real images the domain judge is fit on and checked with
JUDGE_SIZE = 32  # larger images are downsampled to this for the judge
JUDGE_L2 = 1e-2


def _pixels(x: torch.Tensor) -> torch.Tensor:
    if x.shape[-1] > JUDGE_SIZE:
        x = F.interpolate(x, size=(JUDGE_SIZE, JUDGE_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return x.flatten(1)


def fit_domain_judge(images: torch.Tensor, domains: torch.Tensor, *, seed: int = 0):
    """(judge(images) -> logits-like scores, held-out accuracy) from real images in [-1, 1] and their
    domains (N,) or attributes (N, K) float."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=g)[:JUDGE_IMAGES]
    cut = max(1, int(0.8 * len(order)))
    train, held = order[:cut], order[cut:]
    feats = _pixels(images)
    if domains.is_floating_point():  # one two-class probe per attribute
        probes = [fit_logistic_regression(feats[train], domains[train, j].long(), num_classes=2, l2=JUDGE_L2)
                  for j in range(domains.shape[1])]

        def judge(x):
            f = _pixels(x)
            return torch.stack([predict(p, f) for p in probes], 1).float() * 2 - 1  # > 0: present
    else:
        k = int(domains.max()) + 1
        probe = fit_logistic_regression(feats[train], domains[train], num_classes=k, l2=JUDGE_L2)

        def judge(x):
            return F.one_hot(predict(probe, _pixels(x)), k).float()
    acc = domain_accuracy(judge(images[held]), domains[held]) if len(held) else float("nan")
    return judge, acc


@register_metric("domain_acc")
class DomainAccuracy(Metric):
    """Target-domain accuracy of translations by a post-hoc linear domain judge fit on real images."""
    needs = ("domains",)

    def compute(self, ctx):
        sp, t = ctx.split(), ctx.task.translations(ctx)
        real = sp.images.float().div(127.5).sub(1)
        judge, real_acc = fit_domain_judge(real, sp.labels, seed=ctx.seed)
        return {DOMAIN_ACCURACY: domain_accuracy(judge(t["out"]), t["target"]), f"{DOMAIN_ACCURACY}_real": real_acc}


@register_metric("content_acc")
class ContentAccuracy(Metric):
    """Content preservation: the dataset's content classifier on the translations, undone to the
    canonical view, against the sources' classes."""
    needs = ("domains", "content")

    def compute(self, ctx):
        from ..data import dataset
        from ..features import get_feature_extractor
        entry = dataset(ctx.model.cfg.data.name)
        sp, t = ctx.split(), ctx.task.translations(ctx)
        if sp.content is None:
            raise EvalError(f"the reference {ctx.ref} has no content classes")
        content = sp.content[:len(t["out"])]
        ext = get_feature_extractor(entry.content_features, device=ctx.device)
        fake = ext.extract(entry.canonical(t["out"], t["target"]), progress=False)[1]
        real = ext.extract(entry.canonical(t["x"], t["source"]), progress=False)[1]
        return {CONTENT_ACCURACY: content_accuracy(fake.log(), content),
                f"{CONTENT_ACCURACY}_real": content_accuracy(real.log(), content)}


@register_metric("fid_domains")
class FIDPerDomain(Metric):
    """FID per target domain: translations to domain k against the reference images of domain k
    (``fid_<domain>``), and their mean ``fid_domains``."""
    needs = ("domains", "images")

    def compute(self, ctx):
        t = ctx.task.translations(ctx)
        if t["target"].is_floating_point():
            raise EvalError("fid_domains needs one domain per image, not attribute vectors")
        real_f, _, _ = ctx.reference()
        labels = ctx.split().labels[:len(real_f)]
        fake_f, _ = ctx.fake_features()
        names = ctx.task.domain_names(ctx.model.cfg)
        out = {}
        for k in range(int(ctx.model.args["num_classes"])):
            r, f = real_f[labels == k], fake_f[t["target"] == k]
            if len(r) < 2 or len(f) < 2:
                raise EvalError(f"fid_domains: domain {k} has {len(r)} reference images and {len(f)} "
                                f"translations; raise --n")
            out[f"fid_{names[k] if k < len(names) else k}"] = fid_from_features(r, f)
        return {"fid_domains": sum(out.values()) / len(out), **out}
