"""SRGAN (Ledig et al. 2017): an SRResNet generator and a strided-conv discriminator for x2 / x4
single-image super-resolution.

- **SRResNet G**: conv9 + PReLU; ``n_blocks`` residual blocks (conv3-BN-PReLU-conv3-BN, identity
  skip); conv3-BN plus a skip over all the blocks; log2(scale) upsampling stages (conv3 to 4x the
  channels, ``nn.PixelShuffle(2)``, PReLU); conv9 and tanh. The scale is out_shape's size over
  cond_shape's: 2 or 4. The paper has 16 blocks of 64 channels; 4 is the default here (small
  images, small CPUs).
- **D**: conv3 + LeakyReLU(0.2), then ``n_stages`` stages (conv3 stride 1 doubling the channels,
  except in the first stage, then conv3 stride 2; BN + LeakyReLU after each), global average
  pooling, dense(``hidden``) + LeakyReLU, dense(1): one logit per image. The paper has 4
  stages (64..512 channels) on 96 px crops; 3 stages (28 -> 14 -> 7 -> 4) suit 28 px targets.
  The low-resolution input y is not judged (SRGAN's D sees only high-resolution images).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import maybe_sn, norm2d
from .pix2pix import _check_image_shape, _check_input

SCALES = (2, 4)


def _scale(out_shape: tuple, cond_shape: tuple) -> int:
    """The upscaling factor from the low-resolution input shape to the output shape."""
    _, h, w = out_shape
    _, hc, wc = cond_shape
    if h % hc or w % wc or h // hc != w // wc or h // hc not in SCALES:
        raise ValueError(f"srgan upscales by 2 or 4: output {h}x{w} must be 2x or 4x the input "
                         f"{hc}x{wc} in both dimensions")
    return h // hc


class SRResidualBlock(nn.Module):
    """x + (conv3-norm-PReLU-conv3-norm)(x)."""

    def __init__(self, channels: int = 64,  # channels in and out
                 norm: str = "bn"):  # bn | in | ln | none
        super().__init__()
        bias = norm != "bn"
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=bias), norm2d(norm, channels), nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=bias), norm2d(norm, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)  # (B, C, H, W)


class SRResNetGenerator(nn.Module):
    """SRResNet G: low-resolution y (B, *cond_shape) -> (B, *out_shape) in [-1, 1]."""

    def __init__(self, z_dim: int = 0,  # ignored (SRGAN has no noise; kept for the common signature)
                 out_shape: tuple = (1, 28, 28),  # (C, H, W) of the high-resolution images made
                 cond_shape: tuple = (1, 14, 14),  # (C', H / s, W / s) of the inputs, s = 2 or 4
                 width: int = 64,  # channels of every conv before the output (the paper: 64)
                 n_blocks: int = 4,  # residual blocks (the paper: 16)
                 norm: str = "bn",  # bn | in | ln | none ("none": the EDSR / ESRGAN choice)
                 residual: bool = False):  # learn a correction to bicubic upsampling (VDSR-style)
        super().__init__()
        c_out = _check_image_shape("out_shape", out_shape)[0]
        c_in = _check_image_shape("cond_shape", cond_shape)[0]
        self.scale = _scale(out_shape, cond_shape)
        self.z_dim, self.out_shape, self.cond_shape = z_dim, tuple(out_shape), tuple(cond_shape)
        self.head = nn.Sequential(nn.Conv2d(c_in, width, 9, 1, 4), nn.PReLU(width))
        self.blocks = nn.Sequential(*[SRResidualBlock(width, norm) for _ in range(n_blocks)],
                                    nn.Conv2d(width, width, 3, 1, 1, bias=norm != "bn"), norm2d(norm, width))
        ups: list[nn.Module] = []
        for _ in range(self.scale.bit_length() - 1):  # log2(scale) x2 stages
            ups += [nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU(width)]
        self.up = nn.Sequential(*ups)
        # residual: output = clamp(bicubic(y) + correction) (global residual learning, Kim et al.
        # 2016); otherwise tanh as in SRGAN
        self.residual = residual
        if residual and c_in != c_out:
            raise ValueError("residual=True needs as many input as output channels")
        self.tail = nn.Sequential(nn.Conv2d(width, c_out, 9, 1, 4), nn.Identity() if residual else nn.Tanh())

    def forward(self, z: Tensor | None, y: Tensor) -> Tensor:
        _check_input(y, self.cond_shape, "the low-resolution image y")
        h = self.head(y)  # (B, width, h, w)
        h = h + self.blocks(h)  # skip over all residual blocks
        out = self.tail(self.up(h))  # (B, C, h * s, w * s)
        if self.residual:
            base = F.interpolate(y, scale_factor=self.scale, mode="bicubic", align_corners=False)
            out = (base + out).clamp(-1, 1)
        return out  # in [-1, 1]


class SRGANDiscriminator(nn.Module):
    """SRGAN D: high-resolution x (B, *in_shape) -> logits (B,); y is ignored."""

    def __init__(self, in_shape: tuple = (1, 28, 28),  # (C, H, W) of the high-resolution images
                 cond_shape: tuple = (1, 14, 14),  # of the low-resolution inputs: recorded, not judged
                 width: int = 64,  # channels of the first conv; doubles per stage up to 8x
                 n_stages: int = 3,  # stride-2 stages: 3 for 28 px (-> 4x4), the paper 4 (96 -> 6x6)
                 hidden: int = 0,  # units of the dense layer; 0 = 16 * width (the paper's 1024)
                 norm: str = "bn",  # bn | ln | in | none
                 sn: bool = False):  # spectral normalisation on every conv and dense layer
        super().__init__()
        c, h, w = _check_image_shape("in_shape", in_shape)
        if min(h, w) < 2 ** n_stages:
            raise ValueError(f"images of {h}x{w} are too small for {n_stages} stride-2 stages")
        self.in_shape, self.cond_shape = tuple(in_shape), tuple(cond_shape)
        bias = norm != "bn"
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(c, width, 3, 1, 1), sn), nn.LeakyReLU(0.2)]
        ch = width
        for k in range(n_stages):
            nxt = width * min(2 ** k, 8)
            if nxt != ch:  # the stride-1 conv that doubles the channels
                layers += [maybe_sn(nn.Conv2d(ch, nxt, 3, 1, 1, bias=bias), sn), norm2d(norm, nxt), nn.LeakyReLU(0.2)]
                ch = nxt
            layers += [maybe_sn(nn.Conv2d(ch, ch, 3, 2, 1, bias=bias), sn), norm2d(norm, ch), nn.LeakyReLU(0.2)]
        hidden = hidden or 16 * width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, ch)
                   maybe_sn(nn.Linear(ch, hidden), sn), nn.LeakyReLU(0.2), maybe_sn(nn.Linear(hidden, 1), sn)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(x).view(-1)  # (B,) raw logits


__all__ = ["SCALES", "SRGANDiscriminator", "SRResNetGenerator", "SRResidualBlock"]
