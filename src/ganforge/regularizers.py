"""Discriminator regularizers: pure functions of a critic and its inputs, plus weight clipping.

Each registered penalty has the signature ``fn(*, critic, real, fake, generator=None) -> Tensor``
where ``critic`` maps a batch to D's raw outputs. The returned scalar is added to D's loss
multiplied by its configured weight (``loss.penalties: {name: weight}``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .registry import Registry

REGULARIZERS = Registry("regularizer", check=callable)


def interpolate(real: Tensor, fake: Tensor, alpha: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """x_hat = alpha * real + (1 - alpha) * fake with ONE alpha ~ U[0, 1] per sample.

    ``alpha`` has shape (B,); it is broadcast over every other dimension (never drawn per pixel).
    """
    b = real.shape[0]
    if alpha is None:
        dev = generator.device if generator is not None else real.device
        alpha = torch.rand(b, generator=generator, device=dev).to(real.device, real.dtype)
    alpha = alpha.reshape(b, *([1] * (real.dim() - 1)))  # (B, 1, 1, 1) for images
    return alpha * real.detach() + (1.0 - alpha) * fake.detach()


def input_grad_norm(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Per-sample L2 norm of d critic(x) / dx, shape (B,), kept in the graph for backprop."""
    x = x.detach().requires_grad_(True)
    out = critic(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.flatten(1).norm(2, dim=1)


@REGULARIZERS.register("gp")
def gradient_penalty(*, critic, real: Tensor, fake: Tensor, generator=None,
                     alpha: Tensor | None = None) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)||_2 - 1)^2] at per-sample interpolates."""
    norm = input_grad_norm(critic, interpolate(real, fake, alpha, generator))
    return (norm - 1.0).pow(2).mean()


@REGULARIZERS.register("lp")
def lipschitz_penalty(*, critic, real: Tensor, fake: Tensor, generator=None,
                      alpha: Tensor | None = None) -> Tensor:
    """WGAN-LP (Petzka et al. 2018): one-sided E[max(0, ||grad D(x_hat)||_2 - 1)^2]."""
    norm = input_grad_norm(critic, interpolate(real, fake, alpha, generator))
    return torch.relu(norm - 1.0).pow(2).mean()


@REGULARIZERS.register("r1")
def r1_penalty(*, critic, real: Tensor, fake: Tensor | None = None, generator=None) -> Tensor:
    """R1 (Mescheder et al. 2018): 1/2 E[||grad D(x)||^2] on real data; its weight is gamma."""
    return 0.5 * input_grad_norm(critic, real).pow(2).mean()


@REGULARIZERS.register("r2")
def r2_penalty(*, critic, real: Tensor | None = None, fake: Tensor, generator=None) -> Tensor:
    """R2: 1/2 E[||grad D(G(z))||^2] on generated samples; its weight is gamma."""
    return 0.5 * input_grad_norm(critic, fake).pow(2).mean()


@REGULARIZERS.register("cr")
def consistency_penalty(*, critic, real: Tensor, fake: Tensor, generator=None) -> Tensor:
    """Balanced consistency regularisation (Zhang et al. 2020; Zhao et al. 2021):
    E[(D(x) - D(T(x)))^2] + E[(D(G(z)) - D(T(G(z))))^2] with T a random translation (up to 1/8
    of the image) and cutout of each image; on vectors T is the identity, so use it on images."""
    from .augment import diff_augment
    total = real.new_zeros(())
    for x in (real.detach(), fake.detach()):
        if x.dim() != 4:
            continue
        t = diff_augment(x, "translation,cutout", p=1.0, generator=generator)
        total = total + (critic(x) - critic(t)).pow(2).mean()
    return total


@torch.no_grad()
def clip_weights_(module: nn.Module, bound: float) -> None:
    """WGAN weight clipping: clamp every parameter of ``module`` to [-bound, bound] in place."""
    for p in module.parameters():
        p.clamp_(-bound, bound)


def validate_config(cfg) -> None:
    """The loss section's penalties (names; weights are checked with the schema)."""
    for name in cfg.loss.penalties:
        REGULARIZERS.check("loss.penalties", name)
