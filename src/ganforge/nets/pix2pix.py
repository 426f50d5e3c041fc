"""pix2pix (Isola et al. 2017): a U-Net generator and a PatchGAN discriminator for paired
image-to-image translation.

- **U-Net G**: an encoder of 4x4 stride-2 convs (C64-C128-C256-C512-C512-...; LeakyReLU 0.2,
  norm on all but the first and the innermost layer) and a mirrored decoder of 4x4 stride-2
  transposed convs (ReLU, norm, dropout 0.5 in the first ``n_dropout`` blocks: the paper's only
  noise, so ``z`` is ignored), each decoder block seeing the encoder output of its size through
  a skip connection (channel concatenation); tanh output.
- Any image size works: the input is reflection-padded to a multiple of ``2^depth`` and the
  output cropped back (28 -> 32 -> 16 -> 8 -> 4 -> 2 -> 1 -> ... -> 32 -> 28). ``depth`` 0
  (the default) goes down to a 1x1 bottleneck: 5 levels at 28 and 32 px, 8 at 256 px (the
  paper's).
- **PatchGAN D**: C64-C128-C256... 4x4 convs (``n_layers`` of stride 2, then one of stride 1
  and a 1-channel 4x4 conv), a map of logits (B, h, w), each judging one patch. ``n_layers=3``
  is the paper's 70x70 receptive field (a 30x30 map at 256 px); the default 2 (34x34 patches)
  gives a 5x5 map at 28 px. Conditional by default: the input image y is concatenated to x
  along channels (resized to x's size first when the sizes differ).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import maybe_sn, norm2d


def _check_image_shape(name: str, shape) -> tuple[int, int, int]:
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} must be (C, H, W) images, got {tuple(shape)}")
    return tuple(int(s) for s in shape)


def pad_to_multiple(x: Tensor, m: int) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Reflection-pad ``x (B, C, H, W)`` on all sides so H and W are multiples of ``m``.

    Returns the padded tensor and the (left, right, top, bottom) padding for :func:`crop`.
    """
    h, w = x.shape[-2:]
    ph, pw = -h % m, -w % m
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    if ph == 0 and pw == 0:
        return x, pad
    mode = "reflect" if ph < h and pw < w else "replicate"  # reflect needs pad < size
    return F.pad(x, pad, mode=mode), pad


def crop(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Undo :func:`pad_to_multiple`."""
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    return x[..., top:h - bottom, left:w - right]


def _check_input(y: Tensor, shape: tuple, what: str) -> None:
    if y is None or y.dim() != 4 or tuple(y.shape[1:]) != shape:
        got = None if y is None else tuple(y.shape)
        raise ValueError(f"{what} must be (B, {', '.join(map(str, shape))}), got {got}")


class UNetGenerator(nn.Module):
    """U-Net G: input image y (B, *cond_shape) -> image (B, *out_shape) in [-1, 1]."""

    def __init__(self, z_dim: int = 0,  # ignored: dropout is the noise (kept for the common signature)
                 out_shape: tuple = (1, 28, 28),  # (C, H, W) of the images made (the targets)
                 cond_shape: tuple = (1, 28, 28),  # (C', H, W) of the input images; same H, W
                 width: int = 64,  # channels of the first encoder layer; doubles per level up to 8x
                 depth: int = 0,  # encoder levels (x2 downsamplings); 0 = down to a 1x1 bottleneck
                 norm: str = "bn",  # bn | in | ln | none (the paper: batch norm)
                 dropout: float = 0.5,  # dropout probability in the first decoder blocks
                 n_dropout: int = 3):  # how many decoder blocks (from the bottleneck) use dropout
        super().__init__()
        c_out, h, w = _check_image_shape("out_shape", out_shape)
        c_in, hc, wc = _check_image_shape("cond_shape", cond_shape)
        if (h, w) != (hc, wc):
            raise ValueError(f"pix2pix translates between images of one size, got input {hc}x{wc} "
                             f"and output {h}x{w} (use srgan for super-resolution)")
        if depth == 0:
            depth = max(1, (max(h, w) - 1).bit_length())  # 2^depth >= max(H, W): 28 -> 5
        if depth < 2:
            raise ValueError(f"U-Net depth must be >= 2, got {depth} (images {h}x{w})")
        self.z_dim, self.out_shape, self.cond_shape = z_dim, tuple(out_shape), tuple(cond_shape)
        self.depth = depth
        chans = [width * min(2 ** i, 8) for i in range(depth)]  # encoder output channels per level
        bias = norm != "bn"  # a conv followed by batch norm needs no bias

        downs = [nn.Conv2d(c_in, chans[0], 4, 2, 1)]  # outermost: no norm
        for i in range(1, depth):
            inner = i == depth - 1  # the bottleneck has no norm (a 1x1 map per sample)
            downs.append(nn.Sequential(
                nn.LeakyReLU(0.2), nn.Conv2d(chans[i - 1], chans[i], 4, 2, 1, bias=bias or inner),
                nn.Identity() if inner else norm2d(norm, chans[i])))
        self.downs = nn.ModuleList(downs)

        ups = []  # ups[k] undoes downs[depth - 1 - k]
        for k, i in enumerate(range(depth - 1, 0, -1)):
            c_up_in = chans[i] if i == depth - 1 else 2 * chans[i]  # skip concatenated below the bottleneck
            block = [nn.ReLU(), nn.ConvTranspose2d(c_up_in, chans[i - 1], 4, 2, 1, bias=bias),
                     norm2d(norm, chans[i - 1])]
            if k < n_dropout and dropout > 0:
                block.append(nn.Dropout(dropout))
            ups.append(nn.Sequential(*block))
        ups.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * chans[0], c_out, 4, 2, 1), nn.Tanh()))
        self.ups = nn.ModuleList(ups)

    def forward(self, z: Tensor | None, y: Tensor) -> Tensor:
        _check_input(y, self.cond_shape, "the input image y")
        h, pad = pad_to_multiple(y, 2 ** self.depth)  # (B, C', H', W'), H' and W' multiples of 2^depth
        skips = []
        for down in self.downs:
            h = down(h)
            skips.append(h)  # (B, chans[i], H' / 2^(i+1), W' / 2^(i+1))
        h = self.ups[0](skips[-1])
        for up, skip in zip(self.ups[1:], reversed(skips[:-1])):
            h = up(torch.cat([h, skip], 1))
        return crop(h, pad)  # (B, C, H, W) in [-1, 1]


class PatchDiscriminator(nn.Module):
    """PatchGAN D: x (B, *in_shape) [and the input image y] -> logits (B, h, w), one per patch."""

    def __init__(self, in_shape: tuple = (1, 28, 28),  # (C, H, W) of the images judged
                 cond_shape: tuple = (1, 28, 28),  # (C', H', W') of the input images (conditional only)
                 conditional: bool = True,  # judge x together with y (pix2pix) or x alone (CycleGAN)
                 width: int = 64,  # channels of the first conv; doubles per layer up to 8x
                 n_layers: int = 2,  # stride-2 convs: 3 = the paper's 70x70 patches, 2 = 34x34
                 norm: str = "bn",  # bn | in | ln | none
                 sn: bool = False):  # spectral normalisation on every conv
        super().__init__()
        c, h, w = _check_image_shape("in_shape", in_shape)
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.in_shape, self.conditional = tuple(in_shape), bool(conditional)
        self.cond_shape = _check_image_shape("cond_shape", cond_shape) if conditional else None
        c_in = c + (self.cond_shape[0] if conditional else 0)
        # map size: n_layers halvings (k4 s2 p1: floor(s / 2)), then two k4 s1 p1 convs (s - 1 each)
        mh, mw = h, w
        for _ in range(n_layers):
            mh, mw = mh // 2, mw // 2
        if mh - 2 < 1 or mw - 2 < 1:
            raise ValueError(f"images of {h}x{w} are too small for a PatchGAN with n_layers={n_layers} "
                             f"(needs at least {3 * 2 ** n_layers} px); lower n_layers")
        self.out_size = (mh - 2, mw - 2)
        bias = norm != "bn"
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(c_in, width, 4, 2, 1), sn), nn.LeakyReLU(0.2)]
        ch = width
        for i in range(1, n_layers + 1):
            nxt = width * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1  # the last of these keeps the size (s - 1)
            layers += [maybe_sn(nn.Conv2d(ch, nxt, 4, stride, 1, bias=bias), sn), norm2d(norm, nxt),
                       nn.LeakyReLU(0.2)]
            ch = nxt
        layers.append(maybe_sn(nn.Conv2d(ch, 1, 4, 1, 1), sn))  # (B, 1, h, w)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if self.conditional:
            if y is None:
                raise ValueError("a conditional PatchGAN needs the input image y")
            if y.shape[-2:] != x.shape[-2:]:
                y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = torch.cat([x, y], 1)  # (B, C + C', H, W)
        return self.net(x).squeeze(1)  # (B, h, w) raw logits


__all__ = ["PatchDiscriminator", "UNetGenerator", "crop", "pad_to_multiple"]
