"""Projection of real images into a generator's latent space (GAN inversion by optimisation; the
StyleGAN2 paper's projector, section 5, in simplified form).

For target images x (B, C, H, W) find latents whose images G reproduces them, by Adam on

    loss = mean((G(latent) - x)^2) + perceptual_weight * perceptual(G(latent), x)
           [+ noise_weight * noise_regularisation]

over one of three spaces:

- ``"z"``: z (B, z_dim) of any generator ``G(z, y)``;
- ``"w"``: one w per image (B, 1, w_dim), used by every layer, for generators with ``mapping`` /
  ``synthesize`` / ``num_ws`` (StyleGAN2); the start is the mean w of ``init_samples`` mapped
  latents, and Gaussian noise of w's spread, ramped down to 0 over the first ``noise_ramp`` of the
  steps, is added to w while optimising (as the paper does, to explore before settling);
- ``"w+"``: one w per layer (B, num_ws, w_dim), the same start; more expressive, less regular.

For "z" the start is the best of ``init_samples`` random latents per image (0: z = 0).
``perceptual`` is any callable (fake, target) -> scalar or (B,) (e.g. squared distances of the
Fashion-MNIST classifier's features); none by default. With ``optimize_noise`` (StyleGAN2 only) the
per-layer noise planes are optimised too, one set per image, kept from absorbing the image by the
paper's regulariser (:func:`noise_regularization`: squared autocorrelations at 1-pixel shifts over
a pyramid of scales) and renormalised to zero mean and unit variance after every step; otherwise
G's constant noise buffers are used, so G is deterministic.

The learning rate ramps up over the first 5 % of the steps and down (cosine) over the last 25 %.
G is put in eval mode and its parameters get no gradients; both are restored afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SPACES = ("z", "w", "w+")


@dataclass
class Projection:
    latent: Tensor  # z (B, z_dim) for "z"; ws (B, num_ws, w_dim) ready for G.synthesize otherwise
    image: Tensor  # the reconstruction G(latent) (B, C, H, W)
    frames: list[Tensor] = field(default_factory=list)  # reconstructions every frame_every steps, then the last
    losses: list[float] = field(default_factory=list)  # total loss per step
    noise: list[Tensor] | None = None  # the optimised noise planes (B, 1, H, W) each, with optimize_noise


def noise_regularization(planes: list[Tensor]) -> Tensor:
    """Sum over noise planes (B, 1, H, W) and their 2x average-pooled pyramid (down to 8 px) of the
    squared mean products with the plane rolled by one pixel along W and along H: 0 for white noise
    in expectation, large when a plane carries image structure."""
    total = planes[0].new_zeros(())
    for n in planes:
        while True:
            total = total + (n * torch.roll(n, 1, dims=3)).mean().square() \
                + (n * torch.roll(n, 1, dims=2)).mean().square()
            if n.shape[2] <= 8 or n.shape[2] % 2:
                break
            n = F.avg_pool2d(n, 2)
    return total


def _lr_at(step: int, steps: int, lr: float) -> float:
    t = step / max(steps, 1)
    ramp = min(1.0, (1.0 - t) / 0.25)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return lr * ramp * min(1.0, t / 0.05 + 1.0 / max(steps, 1))


def project(G: nn.Module, target: Tensor, *, y: Tensor | None = None, space: str = "z", steps: int = 300,
            lr: float = 0.1, perceptual: Callable[[Tensor, Tensor], Tensor] | None = None,
            perceptual_weight: float = 1.0, optimize_noise: bool = False, noise_weight: float = 1e5,
            init_samples: int = 64, initial_w_noise: float = 0.05, noise_ramp: float = 0.75,
            frame_every: int = 10, generator: torch.Generator | None = None,
            callback: Callable[[int, float], None] | None = None) -> Projection:
    """Project ``target`` (B, C, H, W), in G's output range, into G's latent ``space``; see the
    module docstring. ``y``: class labels (B,) for class-conditional G. ``generator`` seeds every
    random draw (start latents, w noise, noise planes). ``callback(step, loss)`` is called after
    every step (e.g. to move a progress bar)."""
    from .errors import UsageError
    if space not in SPACES:
        raise UsageError(f"unknown projection space '{space}'; choose from {', '.join(SPACES)}")
    style = all(hasattr(G, a) for a in ("mapping", "synthesize", "num_ws"))
    if space != "z" and not style:
        raise UsageError(f"projection into {space} needs a style-based generator (model.arch=stylegan2); use space z")
    if optimize_noise and not (style and hasattr(G, "noise_shapes")):
        raise UsageError("optimize_noise needs a StyleGAN2 generator")
    if target.dim() != 4:
        raise UsageError(f"projection targets must be images (B, C, H, W), got shape {tuple(target.shape)}")
    if steps < 1:
        raise UsageError(f"projection steps must be >= 1, got {steps}")
    was_training = G.training
    grads = [p.requires_grad for p in G.parameters()]
    G.eval().requires_grad_(False)
    try:
        return _project(G, target, y, space, steps, lr, perceptual, perceptual_weight, optimize_noise,
                        noise_weight, init_samples, initial_w_noise, noise_ramp, frame_every, generator, callback)
    finally:
        G.train(was_training)
        for p, g in zip(G.parameters(), grads):
            p.requires_grad_(g)


def _randn(shape, generator, device) -> Tensor:
    dev = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=dev).to(device)


def _project(G, target, y, space, steps, lr, perceptual, perceptual_weight, optimize_noise, noise_weight,
             init_samples, initial_w_noise, noise_ramp, frame_every, generator, callback=None) -> Projection:
    b, dev = target.shape[0], target.device
    z_dim = G.z_dim
    style = hasattr(G, "synthesize")

    def from_z(z: Tensor) -> Tensor:  # StyleGAN2 with its constant noise: deterministic
        return G(z, y, noise_mode="const") if style else G(z, y)

    def distance(fake: Tensor) -> Tensor:  # (B,) per-image loss of candidate images
        d = (fake - target).square().flatten(1).mean(1)
        if perceptual is not None:
            p = perceptual(fake, target)
            d = d + perceptual_weight * (p if p.dim() else p.expand(b))
        return d

    w_std = 0.0
    with torch.no_grad():
        if space == "z":
            start = torch.zeros(b, z_dim, device=dev)
            if init_samples > 0:
                best = distance(from_z(start))
                for _ in range(init_samples):
                    cand = _randn((b, z_dim), generator, dev)
                    d = distance(from_z(cand))
                    better = d < best
                    start[better], best = cand[better], torch.where(better, d, best)
        else:
            n = max(init_samples, 2)
            zs = _randn((n * b, z_dim), generator, dev)
            ys = y.repeat(n) if y is not None else None
            ws = G.mapping(zs, ys)[:, 0].view(n, b, -1)  # (n, B, w_dim)
            w_std = ws.var(0).sum(1).mean().sqrt().item()  # spread of w: sqrt(E |w - mean|^2)
            start = ws.mean(0).unsqueeze(1)  # (B, 1, w_dim)
            if space == "w+":
                start = start.repeat(1, G.num_ws, 1)
    latent = start.clone().requires_grad_(True)
    params = [latent]
    planes = None
    if optimize_noise:
        planes = [_randn((b, *s[1:]), generator, dev).requires_grad_(True) for s in G.noise_shapes()]
        params += planes

    def render(lat: Tensor) -> Tensor:
        if space == "z":
            return from_z(lat)
        ws = lat.expand(-1, G.num_ws, -1) if space == "w" else lat
        return G.synthesize(ws, noise_mode="const", noise=planes)

    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
    frames, losses = [], []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps, lr)
        lat = latent
        if space != "z" and initial_w_noise > 0:
            ramp = max(0.0, 1.0 - step / max(noise_ramp * steps, 1e-8)) ** 2
            if ramp > 0:
                lat = latent + _randn(latent.shape, generator, dev) * (w_std * initial_w_noise * ramp)
        fake = render(lat)
        loss = distance(fake).mean()
        if planes is not None:
            loss = loss + noise_weight * noise_regularization(planes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if callback is not None:
            callback(step, losses[-1])
        if planes is not None:
            with torch.no_grad():
                for n in planes:
                    n.sub_(n.mean((1, 2, 3), keepdim=True)).div_(n.square().mean((1, 2, 3), keepdim=True).sqrt())
        if frame_every > 0 and step % frame_every == 0:
            frames.append(fake.detach().cpu())
    with torch.no_grad():
        final = latent.detach()
        image = render(final)
    frames.append(image.cpu())
    if space == "w":
        final = final.expand(-1, G.num_ws, -1).contiguous()
    return Projection(final, image, frames, losses, [n.detach() for n in planes] if planes is not None else None)
