"""Full-reference image quality for image-to-image translation: PSNR and SSIM per image, and
the bicubic baseline of super-resolution.

Pure functions of two batches ``(B, C, H, W)`` of the same shape; images are in [-1, 1] by
default (the range of the nets' tanh outputs and of the data sources), hence ``data_range=2``.
Both return one value per image, ``(B,)``, so callers average (or report spread) themselves.

- PSNR: ``10 log10(data_range^2 / MSE)`` over all C x H x W values of an image; identical
  images give ``inf`` (their MSE is 0).
- SSIM (Wang et al. 2004): 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, computed per
  channel on the images reflection-padded by 5 px and averaged over every pixel and channel: the
  convention of ``torchmetrics.functional.structural_similarity_index_measure`` (1.x) with its
  defaults, which these values match. SSIM's luminance term is not shift-invariant, so images
  are first shifted to start at 0 (``low``, the value of black: -1 for [-1, 1] images): SSIM of
  [-1, 1] images is then the SSIM of the same images in [0, 1], the published convention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: SSIM's constants (Wang et al. 2004).
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"need two batches of images (B, C, H, W) of one shape, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, ``(B,)``; ``inf`` for identical images."""
    _check_pair(x, y)
    dtype = torch.promote_types(x.dtype, torch.float32)
    mse = (x.to(torch.float64) - y.to(torch.float64)).pow(2).flatten(1).mean(1)  # (B,)
    return (10 * torch.log10(data_range ** 2 / mse)).to(dtype)  # 1/0 -> inf


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, *,
                    dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """The normalised 2-D Gaussian window ``(size, size)`` (outer product of a 1-D one)."""
    d = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(d / sigma) ** 2 / 2)
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0, *, low: float = -1.0) -> Tensor:
    """Structural similarity per image, ``(B,)`` (at most 1, for identical images).

    Args:
        x, y: images ``(B, C, H, W)``, H and W > 5.
        data_range: max - min of the pixel values (2 for [-1, 1], 1 for [0, 1], 255 for bytes).
        low: the value of black, subtracted first (-1 for [-1, 1]; 0 for [0, 1] or [0, 255]).
    """
    _check_pair(x, y)
    pad = SSIM_WINDOW // 2
    if min(x.shape[-2:]) <= pad:
        raise ValueError(f"SSIM needs images larger than {pad}x{pad}, got {tuple(x.shape[-2:])}")
    dtype = torch.promote_types(x.dtype, torch.float32)
    b, c = x.shape[:2]
    x = F.pad(x.to(dtype) - low, (pad,) * 4, mode="reflect")  # (B, C, H + 10, W + 10), black = 0
    y = F.pad(y.to(dtype) - low, (pad,) * 4, mode="reflect")
    win = gaussian_window(dtype=dtype, device=x.device).expand(c, 1, SSIM_WINDOW, SSIM_WINDOW)
    # local means of x, y, x^2, y^2, xy in one depthwise conv: (5B, C, H, W)
    stats = F.conv2d(torch.cat([x, y, x * x, y * y, x * y]), win, groups=c)
    mu_x, mu_y, xx, yy, xy = stats.split(b)
    var_x = (xx - mu_x ** 2).clamp(min=0)
    var_y = (yy - mu_y ** 2).clamp(min=0)
    cov = xy - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)  # (B,): mean over channels and pixels


def bicubic_upscale(x: Tensor, scale: int) -> Tensor:
    """The bicubic baseline of super-resolution: ``(B, C, H, W)`` -> ``(B, C, H*scale, W*scale)``,
    clamped to [-1, 1] (bicubic overshoots at edges)."""
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    if x.dim() != 4:
        raise ValueError(f"need images (B, C, H, W), got {tuple(x.shape)}")
    out = F.interpolate(x.to(torch.promote_types(x.dtype, torch.float32)), scale_factor=int(scale),
                        mode="bicubic", align_corners=False)
    return out.clamp_(-1.0, 1.0)


PSNR, SSIM = "psnr", "ssim"  # result keys for evaluation code

__all__ = ["PSNR", "SSIM", "bicubic_upscale", "gaussian_window", "psnr", "ssim"]
