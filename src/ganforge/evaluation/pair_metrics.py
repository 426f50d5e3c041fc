"""Metrics of image-to-image models on the test inputs: distortion against aligned targets, the
bicubic baseline of super-resolution, and the cycle reconstruction error."""

from __future__ import annotations

import torch

from ..metrics.image import bicubic_upscale, psnr, ssim
from .registry import Metric, register_metric


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(127.5).sub(1)


def _aligned(ctx):
    """(outputs, targets) for the first n test pairs, both in [-1, 1]."""
    out = ctx.outputs()
    return out, _unit(ctx.split().images[:len(out)])


@register_metric("l1")
class L1(Metric):
    """Mean |G(y) - x| over the test pairs, on [-1, 1]."""
    needs = ("pairs",)

    def compute(self, ctx):
        out, x = _aligned(ctx)
        return {"l1": float((out - x).abs().mean())}


@register_metric("psnr")
class PSNR(Metric):
    """Mean PSNR (dB, data range 2) of the outputs against the targets (capped at 100 dB per image)."""
    needs = ("pairs",)

    def compute(self, ctx):
        out, x = _aligned(ctx)
        return {"psnr": float(psnr(out, x).clamp(max=100).mean())}


@register_metric("ssim")
class SSIM(Metric):
    """Mean SSIM (11x11 Gaussian window, sigma 1.5) of the outputs against the targets."""
    needs = ("pairs",)

    def compute(self, ctx):
        out, x = _aligned(ctx)
        return {"ssim": float(ssim(out, x).mean())}


@register_metric("bicubic")
class Bicubic(Metric):
    """Super-resolution's do-little baseline: PSNR and SSIM of bicubic upsampling of the inputs."""
    needs = ("pairs",)

    def compute(self, ctx):
        out, x = _aligned(ctx)
        y = _unit(ctx.split().inputs[:len(out)])
        up = bicubic_upscale(y, x.shape[-1] // y.shape[-1])
        return {"bicubic_psnr": float(psnr(up, x).clamp(max=100).mean()), "bicubic_ssim": float(ssim(up, x).mean())}


@register_metric("cycle")
class CycleError(Metric):
    """Mean |G_ba(G_ab(a)) - a| over the test inputs (the cycle reconstruction error)."""
    needs = ("two_way",)

    def compute(self, ctx):
        out = ctx.outputs()
        a = _unit(ctx.split().inputs[:len(out)])
        back = torch.cat([ctx.model.translate(out[i:i + 200], direction="ba") for i in range(0, len(out), 200)])
        return {"cycle_l1": float((back - a).abs().mean())}
