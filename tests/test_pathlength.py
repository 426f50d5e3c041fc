"""Path-length penalty and lazy-regularisation rules (ganforge.pathlength), and the perceptual path
length maths (ganforge.metrics.ppl), against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganforge.metrics.ppl import (PPL, PPL_STD, filtered_mean, lerp, path_distances, perceptual_path_length,
                                  sample_t, slerp)
from ganforge.nets.stylegan2 import StyleGAN2Generator
from ganforge.pathlength import (generator_path_length, is_lazy_step, lazy_adam, lazy_weight, path_length_penalty,
                                 path_lengths)

pytestmark = pytest.mark.usefixtures("one_thread")


# -- path length ------------------------------------------------------------------------------------------

def _tiny_net(ws: torch.Tensor, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """A 2-pixel "generator" of ws (B, 2 layers, w_dim 1): pixels (3 w0, w0 w1) * scale."""
    w0, w1 = ws[:, 0, 0], ws[:, 1, 0]
    return (torch.stack([3 * w0, w0 * w1], 1) * scale).view(-1, 1, 1, 2)  # (B, 1, 1, 2)


def _hand_lengths():
    """d<img, y>/dw with y = n / sqrt(H W) = n / sqrt 2:  d/dw0 = (3 n0 + w1 n1) / sqrt 2,
    d/dw1 = w0 n1 / sqrt 2; length = sqrt(mean over the two layers of the squares)."""
    out = []
    for (w0, w1), (n0, n1) in (((1.0, 2.0), (1.0, 2.0)), ((0.5, -1.0), (-1.0, 1.0))):
        g0 = (3 * n0 + w1 * n1) / math.sqrt(2)
        g1 = w0 * n1 / math.sqrt(2)
        out.append(math.sqrt((g0 ** 2 + g1 ** 2) / 2))
    return out  # sqrt(13.25), sqrt(4.0625)


WS = torch.tensor([[[1.0], [2.0]], [[0.5], [-1.0]]], dtype=torch.float64)
NOISE = torch.tensor([[1.0, 2.0], [-1.0, 1.0]], dtype=torch.float64).view(2, 1, 1, 2)


def test_path_lengths_hand_computed():
    ws = WS.clone().requires_grad_(True)
    lengths = path_lengths(images=_tiny_net(ws), ws=ws, noise=NOISE)
    l0, l1 = _hand_lengths()
    assert abs(l0 - math.sqrt(13.25)) < 1e-12 and abs(l1 - math.sqrt(4.0625)) < 1e-12
    torch.testing.assert_close(lengths, torch.tensor([l0, l1], dtype=torch.float64), rtol=1e-12, atol=0)


def test_path_length_penalty_hand_computed_and_differentiable():
    scale = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)  # stands in for G's weights
    ws = WS.clone().requires_grad_(True)
    penalty, new_mean, lengths = path_length_penalty(images=_tiny_net(ws, scale), ws=ws, pl_mean=1.0, decay=0.01,
                                                     noise=NOISE)
    l0, l1 = _hand_lengths()
    mean = 1.0 + 0.01 * ((l0 + l1) / 2 - 1.0)  # 1.0182780...
    expected = ((l0 - mean) ** 2 + (l1 - mean) ** 2) / 2
    assert abs(new_mean.item() - mean) < 1e-12 and not new_mean.requires_grad
    assert abs(penalty.item() - expected) < 1e-12
    torch.testing.assert_close(lengths, torch.tensor([l0, l1], dtype=torch.float64))
    # lengths scale with the weights: d penalty / d scale = mean(2 (l_b - a) l_b) at scale 1 (a is a constant)
    (grad,) = torch.autograd.grad(penalty, scale)
    assert abs(grad.item() - ((l0 - mean) * l0 + (l1 - mean) * l1)) < 1e-10


def test_path_length_mean_converges_and_refuses_bad_decay():
    ws = WS.clone().requires_grad_(True)
    mean = torch.tensor(0.0, dtype=torch.float64)
    for _ in range(3000):
        _, mean, _ = path_length_penalty(images=_tiny_net(ws), ws=ws, pl_mean=mean, decay=0.01, noise=NOISE)
    assert abs(mean.item() - sum(_hand_lengths()) / 2) < 1e-6
    with pytest.raises(ValueError, match="decay"):
        path_length_penalty(images=_tiny_net(ws), ws=ws, pl_mean=0.0, decay=0.0, noise=NOISE)


def test_path_length_on_stylegan2_reaches_g_weights():
    torch.manual_seed(0)
    G = StyleGAN2Generator(z_dim=8, out_shape=(1, 28, 28), w_dim=8, map_depth=1, channel_base=128, channel_max=8)
    ws = G.styles(torch.randn(4, 8))  # with style mixing, as in training
    g = torch.Generator().manual_seed(0)
    penalty, mean, lengths = path_length_penalty(images=G.synthesize(ws), ws=ws, pl_mean=0.0, generator=g)
    assert lengths.shape == (4,) and (lengths > 0).all() and torch.isfinite(penalty)
    penalty.backward()
    assert G.const.grad is not None and G.const.grad.abs().sum() > 0
    assert G.map[0].weight.grad is not None and G.map[0].weight.grad.abs().sum() > 0
    # a seeded direction is reproducible
    ws2 = G.styles(torch.randn(4, 8)).detach().requires_grad_(True)
    a = path_lengths(images=G.synthesize(ws2, noise_mode="const"), ws=ws2, generator=torch.Generator().manual_seed(1))
    b = path_lengths(images=G.synthesize(ws2, noise_mode="const"), ws=ws2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_generator_path_length_composes_styles_synthesize_and_penalty():
    torch.manual_seed(0)
    G = StyleGAN2Generator(z_dim=8, out_shape=(1, 28, 28), w_dim=8, map_depth=1, channel_base=128, channel_max=8,
                           noise_mode="const", mixing_prob=0.0)
    z = torch.randn(3, 8)
    got = generator_path_length(G, z, pl_mean=0.5, generator=torch.Generator().manual_seed(4))
    ws = G.styles(z)
    want = path_length_penalty(images=G.synthesize(ws), ws=ws, pl_mean=0.5, generator=torch.Generator().manual_seed(4))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    got[0].backward()
    assert G.const.grad.abs().sum() > 0


# -- lazy regularisation ------------------------------------------------------------------------------------

def test_lazy_regularisation_rules():
    assert lazy_weight(2.0, 4) == 8.0  # path length: weight 2 every 4 G steps
    assert lazy_weight(10.0, 16) == 160.0  # R1: gamma 10 every 16 D steps
    assert [s for s in range(40) if is_lazy_step(s, 16)] == [0, 16, 32]
    # over whole intervals the lazy schedule adds the eager total, up to the penalty's drift within an
    # interval: for p_s = 0.5 + 0.1 s, eager 2 sum p = 131.2, lazy 8 sum p_{4k} = 121.6, short by
    # 2 * 32 steps * 0.1 * 1.5 (the mean offset of a step from its interval's first) = 9.6
    pen = [0.5 + 0.1 * s for s in range(32)]
    eager = sum(2.0 * p for p in pen)
    lazy = sum(lazy_weight(2.0, 4) * p for s, p in enumerate(pen) if is_lazy_step(s, 4))
    assert abs(eager - 131.2) < 1e-9 and abs(lazy - 121.6) < 1e-9
    const = sum(lazy_weight(2.0, 4) * 0.7 for s in range(32) if is_lazy_step(s, 4))
    assert abs(const - 2.0 * 0.7 * 32) < 1e-9  # a constant penalty: exactly the eager total
    lr, betas = lazy_adam(0.0025, (0.0, 0.99), 16)
    c = 16 / 17
    assert abs(lr - 0.0025 * c) < 1e-15 and betas[0] == 0.0 and abs(betas[1] - 0.99 ** c) < 1e-15
    assert abs(betas[1] - 0.9905855) < 1e-7  # exp(16/17 * ln 0.99) = exp(-0.0094591)
    assert lazy_adam(0.002, (0.0, 0.99), 0) == (0.002, (0.0, 0.99))
    for bad in (lambda: lazy_weight(1.0, 0), lambda: is_lazy_step(3, 0), lambda: lazy_adam(1e-3, (0.0, 0.9), -1)):
        with pytest.raises(ValueError, match="interval"):
            bad()


# -- perceptual path length -----------------------------------------------------------------------------------

A = torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]], dtype=torch.float64)


def _linear_g(p):  # a toy linear "generator": 2-D latents -> 3 "pixels"
    return p @ A.T


def _sq_l2(x, y):
    return (x - y).square().sum(1)


def test_lerp_path_length_of_a_linear_generator():
    """In W (lerp) the step is eps (b - a): d / eps^2 = |A (b - a)|^2 = |(3, 1, 3)|^2 = 19 for every t."""
    a = torch.tensor([[0.0, 0.0], [1.0, -1.0]], dtype=torch.float64)
    b = a + 1.0
    t = torch.tensor([0.3, 0.9], dtype=torch.float64)
    d = path_distances(generate=_linear_g, distance=_sq_l2, a=a, b=b, t=t, space="w")
    torch.testing.assert_close(d, torch.tensor([19.0, 19.0], dtype=torch.float64), rtol=1e-7, atol=0)


def test_slerp_path_length_hand_computed():
    """Between orthogonal directions slerp walks a quarter circle: p(t) = (cos(t pi/2), sin(t pi/2)),
    |p(t + eps) - p(t)| = 2 sin(eps pi / 4); with G = 2 I and squared L2:
    d / eps^2 = 16 sin^2(eps pi / 4) / eps^2 (-> pi^2). The end points' norms do not matter."""
    eps = 1e-4
    expected = 16 * math.sin(eps * math.pi / 4) ** 2 / eps ** 2
    assert abs(expected - math.pi ** 2) < 1e-6
    a = torch.tensor([[3.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 0.5], [0.0, 1.0]], dtype=torch.float64)
    t = torch.tensor([0.0, 0.6], dtype=torch.float64)
    d = path_distances(generate=lambda p: 2 * p, distance=_sq_l2, a=a, b=b, t=t, space="z", epsilon=eps)
    torch.testing.assert_close(d, torch.full((2,), expected, dtype=torch.float64), rtol=1e-7, atol=0)


def test_slerp_and_lerp_values():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    t = torch.tensor([1 / 3])
    torch.testing.assert_close(slerp(a, b, t), torch.tensor([[math.cos(math.pi / 6), math.sin(math.pi / 6)]]))
    torch.testing.assert_close(lerp(a, b, t), torch.tensor([[2 / 3, 2 / 3]]))
    torch.testing.assert_close(slerp(a, b, torch.tensor([0.0])), a)
    torch.testing.assert_close(slerp(a, b, torch.tensor([1.0])), b / 2)


def test_percentile_filtering_hand_computed():
    # 0, 1, ..., 99 and one huge outlier: the 1st percentile ("lower") is 1, the 99th ("higher") 99
    d = torch.cat([torch.arange(100.0), torch.tensor([1e4])])
    mean, std = filtered_mean(d)
    assert mean == 50.0  # the mean of 1..99
    assert abs(std - math.sqrt((99 ** 2 - 1) / 12)) < 1e-9  # population std of 1..99
    x = d.numpy()
    lo, hi = np.percentile(x, 1, method="lower"), np.percentile(x, 99, method="higher")
    assert (lo, hi) == (1.0, 99.0)
    assert d.mean().item() > 140  # unfiltered, the outlier dominates


def test_perceptual_path_length_end_to_end():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(201, 2, generator=g, dtype=torch.float64), torch.randn(201, 2, generator=g, dtype=torch.float64)
    t = sample_t(201, "full", generator=g).double()
    out = perceptual_path_length(generate=_linear_g, distance=_sq_l2, a=a, b=b, t=t, space="w")
    expected = ((b - a) @ A.T).square().sum(1)  # per path: |A (b - a)|^2, t does not matter
    lo, hi = np.percentile(expected.numpy(), 1, method="lower"), np.percentile(expected.numpy(), 99, method="higher")
    kept = expected[(expected >= lo) & (expected <= hi)]
    assert set(out) == {PPL, PPL_STD}
    assert abs(out[PPL] - kept.mean().item()) < 1e-6 * kept.mean().item()
    assert kept.numel() == 197  # percentile positions 2 and 198 of 0..200: two paths dropped at each end


def test_sample_t_and_refusals():
    g = torch.Generator().manual_seed(0)
    full = sample_t(1000, "full", generator=g)
    assert full.min() >= 0 and full.max() < 1 and 0.45 < full.mean() < 0.55
    end = sample_t(1000, "end", generator=g)
    assert set(end.tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="unknown PPL sampling"):
        sample_t(3, "middle")
    with pytest.raises(ValueError, match="unknown PPL space"):
        path_distances(generate=_linear_g, distance=_sq_l2, a=torch.zeros(1, 2), b=torch.ones(1, 2),
                       t=torch.zeros(1), space="x")
