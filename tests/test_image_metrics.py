"""PSNR, SSIM and the bicubic baseline against torchmetrics and hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from ganforge.metrics.image import bicubic_upscale, psnr, ssim

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_pair(shape=(3, 3, 28, 28), noise=0.3, seed=0, dtype=torch.float32):
    x = torch.rand(shape, generator=_gen(seed), dtype=dtype) * 2 - 1
    y = (x + noise * torch.randn(shape, generator=_gen(seed + 1), dtype=dtype)).clamp(-1, 1)
    return x, y


def structured_pair(dtype=torch.float32):
    """Smooth gradients, a checkerboard and a disc (in [-1, 1]), against blurred / shifted /
    darkened versions of themselves."""
    i, j = torch.meshgrid(torch.arange(32, dtype=dtype), torch.arange(32, dtype=dtype), indexing="ij")
    grad = (i + j) / 31 - 1
    checker = ((i // 4 + j // 4) % 2) * 2 - 1
    disc = torch.where((i - 15.5) ** 2 + (j - 15.5) ** 2 < 100, 0.8, -0.9).to(dtype)
    x = torch.stack([grad, checker, disc]).unsqueeze(1)  # (3, 1, 32, 32)
    y = torch.stack([grad.roll(2, 1), torch.nn.functional.avg_pool2d(checker[None], 3, 1, 1)[0],
                     disc * 0.5 - 0.3]).unsqueeze(1)
    return x, y


PAIRS = {
    "random": lambda dtype: random_pair(dtype=dtype),
    "random-gray-small-noise": lambda dtype: random_pair((4, 1, 28, 28), noise=0.05, seed=3, dtype=dtype),
    "structured": structured_pair,
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", list(PAIRS))
def test_psnr_matches_torchmetrics(case, dtype):
    x, y = PAIRS[case](dtype)
    ours = psnr(x, y)
    ref = tm_psnr(x, y, data_range=2.0, reduction="none", dim=(1, 2, 3))
    assert ours.shape == (x.shape[0],) and ours.dtype == dtype
    assert torch.allclose(ours, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", list(PAIRS))
def test_ssim_matches_torchmetrics(case, dtype):
    x, y = PAIRS[case](dtype)
    ours = ssim(x, y)
    assert ours.shape == (x.shape[0],) and ours.dtype == dtype
    # SSIM of [-1, 1] images is that of the same images in [0, 1] (the published convention)
    ref = tm_ssim((x + 1) / 2, (y + 1) / 2, data_range=1.0, reduction="none")
    assert torch.allclose(ours, ref, rtol=0, atol=1e-5)
    # and images already in [0, 1] or [0, 255]
    u, v = (x + 1) / 2, (y + 1) / 2
    assert torch.allclose(ssim(u, v, data_range=1.0, low=0.0), ref, rtol=0, atol=1e-5)
    b, c = u * 255, v * 255
    assert torch.allclose(ssim(b, c, data_range=255.0, low=0.0),
                          tm_ssim(b, c, data_range=255.0, reduction="none"), rtol=0, atol=1e-5)


def test_ssim_orders_degradations_and_is_one_for_identical_images():
    x, _ = random_pair(noise=0)
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-6)
    small = ssim(*random_pair(noise=0.05))
    large = ssim(*random_pair(noise=0.5))
    assert (small > large).all() and (small < 1).all()


def test_psnr_of_identical_images_is_inf_and_of_an_offset_is_known():
    x, _ = random_pair()
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()
    # a constant offset of 0.1: MSE 0.01, PSNR = 10 log10(2^2 / 0.01) = 26.0206 dB
    expected = 10 * math.log10(4 / 0.01)
    assert abs(expected - 26.0206) < 1e-4
    assert torch.allclose(psnr(x, x + 0.1), torch.full((3,), expected), atol=1e-4)
    assert torch.allclose(psnr(x.double(), x.double() + 0.1), torch.full((3,), expected, dtype=torch.float64),
                          atol=1e-9)
    # data_range 1: 10 log10(1 / 0.01) = 20 dB
    assert torch.allclose(psnr(x, x + 0.1, data_range=1.0), torch.full((3,), 20.0), atol=1e-4)


def test_bicubic_baseline():
    lo = torch.rand(2, 1, 7, 7, generator=_gen(0)) * 2 - 1
    up = bicubic_upscale(lo, 4)
    assert up.shape == (2, 1, 28, 28)
    assert up.min() >= -1 and up.max() <= 1  # clamped (bicubic overshoots)
    assert bicubic_upscale(torch.rand(1, 3, 14, 14), 2).shape == (1, 3, 28, 28)
    flat = torch.full((1, 1, 7, 7), 0.3)
    assert torch.allclose(bicubic_upscale(flat, 4), torch.full((1, 1, 28, 28), 0.3), atol=1e-6)
    with pytest.raises(ValueError):
        bicubic_upscale(lo, 1.5)


def test_shape_checks():
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 9))
    with pytest.raises(ValueError, match="one shape"):
        ssim(torch.zeros(2, 8, 8), torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="larger"):
        ssim(torch.zeros(1, 1, 5, 5), torch.zeros(1, 1, 5, 5))
