"""Latent projection (ganforge.project): a latent the test draws is recovered from its image, in Z
for any generator and in W / W+ for StyleGAN2; the loss terms against hand-computed values.

PSNR thresholds: the targets are exactly reachable (G made them from the drawn latent), so a
converged projection is limited only by the optimiser. 40 dB on the [-1, 1] range is an RMSE of
0.02, 1 % of the range (invisible); the starting points (best of 64 random latents, or the mean w)
stay below 30 dB, so passing needs real progress from the optimiser.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge.errors import UsageError
from ganforge.metrics.image import psnr
from ganforge.nets.stylegan2 import StyleConv, StyleGAN2Generator
from ganforge.project import noise_regularization, project

pytestmark = pytest.mark.usefixtures("one_thread")


class TinyG(nn.Module):
    """A fixed smooth generator: z (4) -> 8x8 image in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.z_dim = 4
        self.net = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 64), nn.Tanh())

    def forward(self, z, y=None):
        return self.net(z).view(-1, 1, 8, 8)


def _style_g(num_classes: int = 0) -> StyleGAN2Generator:
    torch.manual_seed(0)
    G = StyleGAN2Generator(z_dim=8, out_shape=(1, 28, 28), num_classes=num_classes, w_dim=8, map_depth=1,
                           channel_base=128, channel_max=8, noise_mode="const").eval()
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, StyleConv) and not m.rgb:
                m.noise_strength.fill_(0.2)  # as if trained: the noise shows in the images
    return G


def test_recovers_a_drawn_z_of_a_fixed_generator():
    torch.manual_seed(0)
    G = TinyG()
    z_true = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = G(z_true)
    out = project(G, target, space="z", steps=100, lr=0.1, frame_every=10, generator=torch.Generator().manual_seed(2))
    assert (psnr(out.frames[0], target) < 30).all(), "the start already matches: vacuous"
    assert (psnr(out.image, target) > 40).all(), psnr(out.image, target)
    assert (out.latent - z_true).abs().max() < 0.05  # this G is injective near z_true
    assert len(out.frames) == 11 and len(out.losses) == 100
    assert out.losses[-1] < out.losses[0] / 100


def test_stylegan2_w_projection_recovers_the_image():
    G = _style_g()
    with torch.no_grad():
        target = G.synthesize(G.mapping(torch.randn(2, 8, generator=torch.Generator().manual_seed(1))))
    out = project(G, target, space="w", steps=150, generator=torch.Generator().manual_seed(2))
    assert out.latent.shape == (2, G.num_ws, G.w_dim)
    assert torch.equal(out.latent[:, 0], out.latent[:, -1])  # one w for every layer
    assert (psnr(out.frames[0], target) < 30).all()
    assert (psnr(out.image, target) > 40).all(), psnr(out.image, target)
    with torch.no_grad():  # the latent is ready for synthesize
        torch.testing.assert_close(G.synthesize(out.latent), out.image)


def test_stylegan2_w_plus_and_z_projection_improve():
    """W+ (num_ws x w_dim free values) and Z (through the mapping) converge more slowly than W on
    this G: after 60 steps each image must have gained 6 dB over its start (measured: 8 to 25 dB)."""
    G = _style_g()
    with torch.no_grad():
        target = G.synthesize(G.mapping(torch.randn(2, 8, generator=torch.Generator().manual_seed(3))))
    for space in ("w+", "z"):
        out = project(G, target, space=space, steps=60, generator=torch.Generator().manual_seed(2))
        gain = psnr(out.image, target) - psnr(out.frames[0], target)
        assert (gain > 6).all(), (space, gain)
    assert out.latent.shape == (2, 8)


def test_conditional_projection_uses_the_labels():
    G = _style_g(num_classes=3)
    y = torch.tensor([0, 2])
    with torch.no_grad():
        target = G.synthesize(G.mapping(torch.randn(2, 8, generator=torch.Generator().manual_seed(1)), y))
    out = project(G, target, y=y, space="w", steps=40, generator=torch.Generator().manual_seed(2))
    assert out.image.shape == target.shape and out.losses[-1] < out.losses[0]


def test_loss_terms_hand_computed():
    torch.manual_seed(0)
    G = TinyG()
    target = torch.zeros(2, 1, 8, 8)
    calls = []

    def perceptual(fake, tgt):
        calls.append(fake.shape)
        return (fake - tgt).abs().flatten(1).sum(1)  # (B,)

    out = project(G, target, steps=3, perceptual=perceptual, perceptual_weight=0.5, init_samples=0)
    assert calls and calls[0] == (2, 1, 8, 8)
    f0 = out.frames[0]  # G(0): the start when init_samples=0
    torch.testing.assert_close(f0, G(torch.zeros(2, 4)).detach())
    expected = (f0.square().flatten(1).mean(1) + 0.5 * f0.abs().flatten(1).sum(1)).mean()
    assert abs(out.losses[0] - expected.item()) < 1e-6


def test_noise_regularization_hand_computed():
    n = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    # roll along W: (2, 1, 4, 3) -> products 2, 2, 12, 12, mean 7; along H: (3, 4, 1, 2) -> 3, 8, 3, 8, mean 5.5
    assert noise_regularization([n]).item() == 7 ** 2 + 5.5 ** 2
    # a constant 16x16 plane: products 1 at 16 px and at 8 px (the pyramid stops at 8): 4 terms of 1
    assert noise_regularization([torch.ones(1, 1, 16, 16)]).item() == 4.0
    assert noise_regularization([n, torch.ones(1, 1, 16, 16)]).item() == 7 ** 2 + 5.5 ** 2 + 4.0


def test_optimized_noise_planes():
    G = _style_g()
    with torch.no_grad():
        target = G.synthesize(G.mapping(torch.randn(2, 8, generator=torch.Generator().manual_seed(1))))
    out = project(G, target, space="w", steps=40, optimize_noise=True, noise_weight=0.0,
                  generator=torch.Generator().manual_seed(2))
    assert out.noise is not None and [tuple(p.shape[1:]) for p in out.noise] == [s[1:] for s in G.noise_shapes()]
    for p in out.noise:  # renormalised after every step
        assert p.shape[0] == 2
        torch.testing.assert_close(p.mean((1, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
        torch.testing.assert_close(p.square().mean((1, 2, 3)), torch.ones(2), atol=1e-4, rtol=0)
    assert (psnr(out.image, target) - psnr(out.frames[0], target) > 8).all()


def test_g_is_left_as_it_was():
    G = _style_g().train()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    target = torch.zeros(1, 1, 28, 28)
    project(G, target, space="w", steps=3, init_samples=4)
    assert G.training and all(p.requires_grad and p.grad is None for p in G.parameters())
    assert all(torch.equal(v, before[k]) for k, v in G.state_dict().items())  # w_avg not moved either


def test_refusals():
    G = TinyG()
    target = torch.zeros(1, 1, 8, 8)
    with pytest.raises(UsageError, match="needs a style-based generator"):
        project(G, target, space="w")
    with pytest.raises(UsageError, match="unknown projection space 'x'"):
        project(G, target, space="x")
    with pytest.raises(UsageError, match="optimize_noise needs a StyleGAN2"):
        project(G, target, optimize_noise=True)
    with pytest.raises(UsageError, match="must be images"):
        project(G, torch.zeros(8, 8))
