"""Perceptual path length as evaluation metrics (the maths is :mod:`ganforge.metrics.ppl`).

``ppl`` measures full paths (t uniform in [0, 1]), ``ppl_end`` path end points (t in {0, 1}), both
with epsilon 1e-4 and the mean over the distances between the 1st and 99th percentiles:

- ``<name>_z`` / ``<name>_z_std``: slerp between two latents in z, for every image generator;
- ``<name>_w`` / ``<name>_w_std``: lerp between their ws, for style-based generators only
  (w = G.mapping(z), images ``G.synthesize`` of w at every layer);
- ``<name>_paths``: the number of paths per space (the evaluation's ``n``).

Paths: with ``torch.Generator().manual_seed(seed)``, z0 = latent(n), z1 = latent(n), then (class-
conditional models) one class per path shared by both ends, then t (n,). Style-based generators
use their constant noise, so only the latent moves. slerp returns unit vectors; generators
without their own latent normalisation see them rescaled to the root-mean-square norm of the
drawn latents (sqrt(z_dim) for normal latents).

The distance (:func:`ganforge.perceptual.best_distance`): LPIPS-alex when the ``lpips`` package and
all its weights are on disk (never downloaded), otherwise the squared L2 distance between the
shipped Fashion-MNIST classifier's unit-normalised features. Which one was used is written to the
evaluation's provenance as ``ppl_distance``; values measured with different distances are not
comparable.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..metrics.ppl import EPSILON, filtered_mean, path_distances, sample_t
from .registry import Metric, register_metric

BATCH = 250  # paths per forward pass (two images each)


def ppl_distance(ctx):
    """The perceptual distance of this evaluation, made once; its description goes to provenance."""
    def make():
        from ..perceptual import best_distance
        d = best_distance(ctx.device)
        ctx.notes["ppl_distance"] = d.description
        return d
    return ctx._once("ppl_distance", make)


def path_lengths(ctx, sampling: str, space: str) -> Tensor:
    """Per-path d / eps^2 (n,) for the evaluation's model, in ``space`` ("z" or "w")."""
    g, n = ctx.model, ctx.n
    net, dev = g.net, g.device
    distance = ppl_distance(ctx)
    gen = torch.Generator().manual_seed(ctx.seed)
    z0, z1 = g.latent(n, generator=gen), g.latent(n, generator=gen)
    y = g.labels(n, None, generator=gen)
    t = sample_t(n, sampling, generator=gen)
    scale = torch.cat([z0, z1]).square().sum(1).mean().sqrt().item()  # rms norm of the latents
    out = []
    with torch.no_grad():
        for i in range(0, n, BATCH):
            yb = y[i:i + BATCH].to(dev) if y is not None else None
            a, b = z0[i:i + BATCH].to(dev), z1[i:i + BATCH].to(dev)
            if g.style_based:
                def synth(w: Tensor) -> Tensor:
                    return net.synthesize(w[:, None].expand(-1, net.num_ws, -1), noise_mode="const")
                if space == "w":
                    a, b = net.mapping(a, yb)[:, 0], net.mapping(b, yb)[:, 0]
                    generate = synth
                else:
                    def generate(z: Tensor) -> Tensor:
                        return synth(net.mapping(z, yb)[:, 0])
            else:
                def generate(z: Tensor) -> Tensor:
                    return g(z * scale, yb)
            out.append(path_distances(generate=generate, distance=distance, a=a, b=b, t=t[i:i + BATCH],
                                      space=space, epsilon=EPSILON).cpu())
    return torch.cat(out)


@register_metric("ppl")
class PerceptualPathLength(Metric):
    """Perceptual path length, full paths: ppl_z (slerp in z), ppl_w (lerp in w, style-based models)."""
    needs = ("images", "latent")
    sampling = "full"

    def compute(self, ctx) -> dict[str, float]:
        spaces = ("z", "w") if ctx.model.style_based else ("z",)
        results = {}
        for space in spaces:
            mean, std = filtered_mean(path_lengths(ctx, self.sampling, space), 1.0, 99.0)
            results[f"{self.name}_{space}"] = mean
            results[f"{self.name}_{space}_std"] = std
        results[f"{self.name}_paths"] = float(ctx.n)
        return results


@register_metric("ppl_end")
class PerceptualPathLengthEnd(PerceptualPathLength):
    """Perceptual path length at path end points: ppl_end_z, ppl_end_w (style-based models)."""
    sampling = "end"


__all__ = ["PerceptualPathLength", "PerceptualPathLengthEnd", "path_lengths", "ppl_distance"]
