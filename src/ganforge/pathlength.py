"""StyleGAN2's path-length regularisation and the lazy-regularisation rule (Karras et al. 2020,
sections 3.2 and 3.1). Pure functions: the objective owns the state (``pl_mean``) and the schedule.

Path length: for images g(w) and a random image-space direction y ~ N(0, I) / sqrt(H W), the
Jacobian-vector product J_w^T y = d <g(w), y> / dw has an expected length that should stay the same
for every w (a well-conditioned, isometric G). The penalty is

    a_new   = a + decay (mean_b |J^T y|_b - a)           (running mean of the lengths, "pl_mean")
    penalty = mean_b (|J^T y|_b - a_new)^2

where |J^T y|_b = sqrt(mean over layers l of sum_k (d<g, y>/dw_{b,l,k})^2) for per-layer
ws (B, num_ws, w_dim). As in the official implementation the penalty is measured against the mean
*after* this batch's update (it is detached: a constant). The paper uses weight 2 with a batch half
the size of the G batch.

Lazy regularisation: a regulariser evaluated only every ``interval`` steps keeps its average
strength when its weight is multiplied by ``interval`` (:func:`lazy_weight`): StyleGAN2 runs R1
every 16 D steps with weight gamma * 16 and path length every 4 G steps with weight 2 * 4. The
paper runs the regulariser as a separate optimiser step, so a lazily regularised net sees
interval + 1 updates per interval steps and its Adam settings are scaled by
c = interval / (interval + 1): lr * c, betas ** c (:func:`lazy_adam`). Adding the penalty to the
loss of every interval-th ordinary step needs no such correction.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def path_lengths(*, images: Tensor, ws: Tensor, noise: Tensor | None = None,
                 generator: torch.Generator | None = None, create_graph: bool = True) -> Tensor:
    """Per-sample |J_w^T y| (B,) for images (B, C, H, W) computed from ws (B, L, w_dim) (or (B,
    w_dim)) in the autograd graph. ``noise``: the direction y before the 1/sqrt(H W) scaling
    (default: drawn N(0, I), from ``generator`` if given)."""
    if images.dim() != 4:
        raise ValueError(f"path length needs images (B, C, H, W), got shape {tuple(images.shape)}")
    h, w = images.shape[2:]
    if noise is None:
        noise = torch.randn(images.shape, generator=generator, device=images.device if generator is None
                            else generator.device).to(images.device, images.dtype)
    y = noise / math.sqrt(h * w)  # (B, C, H, W)
    (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=create_graph)
    if grad.dim() == 2:
        grad = grad.unsqueeze(1)  # (B, 1, w_dim)
    return grad.square().sum(2).mean(1).sqrt()  # (B,)


def path_length_penalty(*, images: Tensor, ws: Tensor, pl_mean: Tensor | float, decay: float = 0.01,
                        noise: Tensor | None = None, generator: torch.Generator | None = None
                        ) -> tuple[Tensor, Tensor, Tensor]:
    """StyleGAN2 path-length penalty; returns (penalty, new_pl_mean, lengths).

    ``penalty`` (scalar, differentiable w.r.t. G's parameters) is what G minimises, multiplied by
    its weight (paper: 2; lazily: 2 * interval); ``new_pl_mean`` (detached scalar) replaces the
    caller's running mean; ``lengths`` (B,) are the detached per-sample path lengths (for logging).
    ``pl_mean`` starts at 0, as in the paper.
    """
    if not 0 < decay <= 1:
        raise ValueError(f"path-length decay must be in (0, 1], got {decay}")
    lengths = path_lengths(images=images, ws=ws, noise=noise, generator=generator)  # (B,)
    pl_mean = torch.as_tensor(pl_mean, dtype=lengths.dtype, device=lengths.device)
    new_mean = pl_mean.lerp(lengths.detach().mean(), decay)  # pl_mean + decay (mean - pl_mean)
    penalty = (lengths - new_mean).square().mean()
    return penalty, new_mean.detach(), lengths.detach()


def generator_path_length(G, z: Tensor, y: Tensor | None = None, *, pl_mean: Tensor | float,
                          decay: float = 0.01, generator: torch.Generator | None = None
                          ) -> tuple[Tensor, Tensor, Tensor]:
    """The path-length penalty of a style-based G (``styles`` / ``synthesize``, e.g. StyleGAN2) on
    latents z (B, z_dim) [and labels y]: ws = G.styles(z, y) (style mixing and the w_avg update
    happen as in G's forward), images = G.synthesize(ws), then :func:`path_length_penalty`.
    The paper evaluates it on half the G batch."""
    ws = G.styles(z, y)  # (B, num_ws, w_dim), in the autograd graph
    return path_length_penalty(images=G.synthesize(ws), ws=ws, pl_mean=pl_mean, decay=decay, generator=generator)


def lazy_weight(weight: float, interval: int) -> float:
    """The weight of a regulariser applied every ``interval`` steps: weight * interval."""
    if int(interval) < 1:
        raise ValueError(f"regularisation interval must be >= 1, got {interval}")
    return float(weight) * int(interval)


def is_lazy_step(step: int, interval: int) -> bool:
    """Whether a regulariser with this interval runs at ``step`` (steps 0, interval, 2 interval, ...)."""
    if int(interval) < 1:
        raise ValueError(f"regularisation interval must be >= 1, got {interval}")
    return step % int(interval) == 0


def lazy_adam(lr: float, betas: tuple[float, float], interval: int) -> tuple[float, tuple[float, float]]:
    """Adam settings for a net whose regulariser runs as its own optimiser step every ``interval``
    steps (the paper's setup): c = interval / (interval + 1), (lr * c, (b1 ** c, b2 ** c)), so that
    interval + 1 optimiser steps move the weights as far as interval unregularised ones would.
    ``interval`` 0 means no separate regularisation step: settings unchanged. When the penalty is
    added to the loss of an ordinary step instead (as ganforge's objective does), there is no extra
    step and no correction is needed."""
    if int(interval) < 0:
        raise ValueError(f"regularisation interval must be >= 0, got {interval}")
    if int(interval) == 0:
        return float(lr), (float(betas[0]), float(betas[1]))
    c = interval / (interval + 1)
    return lr * c, (betas[0] ** c, betas[1] ** c)
