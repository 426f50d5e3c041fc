"""Perceptual path length (PPL, Karras et al. 2019, "A Style-Based Generator Architecture for GANs",
section 3): how much the images change, perceptually, along small steps of latent interpolations.

    l = E[ d(G(p(t)), G(p(t + eps))) / eps^2 ],   eps = 1e-4

with p(t) the interpolation between two latents: spherical (:func:`slerp`) in Z, where latents are
Gaussian, and linear (:func:`lerp`) in W. ``t`` is uniform in [0, 1] for full paths, or in {0, 1}
for path end points (the paper's definition; the official code evaluates only t = 0). The mean is
taken over the distances between the 1st and 99th percentiles (:func:`filtered_mean`; the official
code's "lower" / "higher" percentile interpolation), which removes the rare huge jumps.

Pure maths: the caller passes the generator (latent -> images) and the distance (images, images
-> (N,), e.g. LPIPS or squared distances of classifier features); nothing is loaded or written
here. For StyleGAN2 in W: a, b = G.mapping(z0)[:, 0], G.mapping(z1)[:, 0] and
``generate = lambda w: G.synthesize(w[:, None].expand(-1, G.num_ws, -1), noise_mode="const")``.
:func:`slerp` returns unit vectors (StyleGAN normalises z anyway); a generator that does not should
get them scaled back to the latent's typical norm, e.g. ``lambda z: G(z * z_dim ** 0.5)``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

PPL = "ppl"  # result keys
PPL_STD = "ppl_std"
EPSILON = 1e-4
SPACES = ("z", "w")
SAMPLINGS = ("full", "end")


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between the directions of a and b (N, D) at t (N,), on the unit
    sphere (the result has unit norm, as in the paper's code)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(-1, keepdim=True).clamp(-1, 1)  # cos(theta) (N, 1)
    p = t.reshape(-1, *([1] * (a.dim() - 1))) * torch.acos(d)  # angle t * theta
    c = b - d * a  # the part of b orthogonal to a
    c = c / c.norm(dim=-1, keepdim=True)
    out = a * torch.cos(p) + c * torch.sin(p)
    return out / out.norm(dim=-1, keepdim=True)


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """a + t (b - a) with one t per row (t (N,), a and b (N, ...))."""
    return a + t.reshape(-1, *([1] * (a.dim() - 1))) * (b - a)


def sample_t(n: int, sampling: str = "full", generator: torch.Generator | None = None) -> Tensor:
    """Interpolation positions (n,): U[0, 1) for "full" paths, 0 or 1 (equally likely) for "end"."""
    if sampling == "full":
        return torch.rand(n, generator=generator)
    if sampling == "end":
        return torch.randint(0, 2, (n,), generator=generator).float()
    raise ValueError(f"unknown PPL sampling '{sampling}'; choose from {', '.join(SAMPLINGS)}")


def path_distances(*, generate: Callable[[Tensor], Tensor], distance: Callable[[Tensor, Tensor], Tensor],
                   a: Tensor, b: Tensor, t: Tensor, space: str = "z", epsilon: float = EPSILON) -> Tensor:
    """Per-path d(G(p(t)), G(p(t + eps))) / eps^2 (N,) for end points a, b (N, ...) given in
    ``space`` ("z": slerp, "w": lerp) and positions t (N,)."""
    if space not in SPACES:
        raise ValueError(f"unknown PPL space '{space}'; choose from {', '.join(SPACES)}")
    if a.shape != b.shape or t.shape != (a.shape[0],):
        raise ValueError(f"end points must share a shape (N, ...) and t be (N,): got {tuple(a.shape)}, "
                         f"{tuple(b.shape)}, {tuple(t.shape)}")
    interp = slerp if space == "z" else lerp
    t = t.to(a.device, a.dtype)
    p0, p1 = interp(a, b, t), interp(a, b, t + epsilon)
    d = distance(generate(p0), generate(p1))
    return d.reshape(-1) / epsilon ** 2


def filtered_mean(distances: Tensor, lo: float = 1.0, hi: float = 99.0) -> tuple[float, float]:
    """Mean and std of the distances inside [lo-th percentile ("lower"), hi-th percentile ("higher")]."""
    d = distances.detach().double().reshape(-1).cpu()
    if d.numel() == 0:
        raise ValueError("no path distances to average")
    lo_v = torch.quantile(d, lo / 100, interpolation="lower")
    hi_v = torch.quantile(d, hi / 100, interpolation="higher")
    kept = d[(d >= lo_v) & (d <= hi_v)]
    return kept.mean().item(), kept.std(unbiased=False).item()


def perceptual_path_length(*, generate: Callable[[Tensor], Tensor], distance: Callable[[Tensor, Tensor], Tensor],
                           a: Tensor, b: Tensor, t: Tensor, space: str = "z", epsilon: float = EPSILON,
                           lo: float = 1.0, hi: float = 99.0) -> dict[str, float]:
    """PPL of the paths between a[i] and b[i] at t[i]: {PPL: filtered mean, PPL_STD: its std}."""
    d = path_distances(generate=generate, distance=distance, a=a, b=b, t=t, space=space, epsilon=epsilon)
    mean, std = filtered_mean(d, lo, hi)
    return {PPL: mean, PPL_STD: std}
