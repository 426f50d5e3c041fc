"""CycleGAN (Zhu et al. 2017): two ResNet generators (A -> B, B -> A) and two PatchGANs for
unpaired image-to-image translation.

- **ResNet G** (Johnson et al. 2016, as in the paper): c7s1-64, d128, d256, ``n_blocks`` x R256,
  u128, u64, c7s1-C, tanh. Reflection padding, instance norm, ReLU. The paper uses 6 blocks at
  128 px and 9 at 256 px; 6 is the default here. Any size works: the input is
  reflection-padded to a multiple of 4 and the output cropped back (28 -> 14 -> 7 -> 14 -> 28
  needs no padding).
- **D**: two unconditional PatchGANs (:class:`~ganforge.nets.pix2pix.PatchDiscriminator`
  with ``conditional=False``), instance norm.

:class:`CycleGenerator` and :class:`CycleDiscriminator` bundle the two directions so the
common ``G(z, y)`` / ``D(x, y)`` interface still holds: ``G(z, y)`` translates A -> B and ``D(x)``
judges B images; the cycle objective reaches the other halves as ``G.ba`` and ``D.a``.
"""

from __future__ import annotations

from torch import Tensor, nn

from .layers import norm2d
from .pix2pix import PatchDiscriminator, _check_image_shape, _check_input, crop, pad_to_multiple


class ResnetBlock(nn.Module):
    """x + (pad-conv3-norm-ReLU-pad-conv3-norm)(x), channel count and size kept."""

    def __init__(self, channels: int = 256,  # channels in and out
                 norm: str = "in"):  # in | bn | ln | none
        super().__init__()
        bias = norm != "bn"
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm2d(norm, channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm2d(norm, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)  # (B, C, H, W)


class ResnetGenerator(nn.Module):
    """One translation direction: images (B, *in_shape) -> (B, *out_shape) in [-1, 1]."""

    def __init__(self, in_shape: tuple = (1, 28, 28),  # (C, H, W) of the source domain
                 out_shape: tuple = (1, 28, 28),  # (C', H, W) of the target domain; same H, W
                 width: int = 64,  # channels of the first conv (x2, x4 after the downsamplings)
                 n_blocks: int = 6,  # residual blocks at 1/4 resolution (the paper: 6 or 9)
                 norm: str = "in"):  # in | bn | ln | none (the paper: instance norm)
        super().__init__()
        c_in, h, w = _check_image_shape("in_shape", in_shape)
        c_out, ho, wo = _check_image_shape("out_shape", out_shape)
        if (h, w) != (ho, wo):
            raise ValueError(f"CycleGAN translates between images of one size, got {h}x{w} and {ho}x{wo}")
        if min(h, w) < 8:  # the residual blocks reflection-pad maps of 1/4 size by 1
            raise ValueError(f"CycleGAN needs images of at least 8x8, got {h}x{w}")
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        bias = norm != "bn"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(c_in, width, 7, bias=bias),
                                   norm2d(norm, width), nn.ReLU()]  # c7s1-64: (B, w, H, W)
        ch = width
        for _ in range(2):  # d128, d256: (B, 4w, H/4, W/4)
            layers += [nn.Conv2d(ch, 2 * ch, 3, 2, 1, bias=bias), norm2d(norm, 2 * ch), nn.ReLU()]
            ch *= 2
        layers += [ResnetBlock(ch, norm) for _ in range(n_blocks)]
        for _ in range(2):  # u128, u64: (B, w, H, W)
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1, bias=bias),
                       norm2d(norm, ch // 2), nn.ReLU()]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, c_out, 7), nn.Tanh()]  # c7s1-C
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.in_shape, "the source image")
        h, pad = pad_to_multiple(x, 4)
        return crop(self.net(h), pad)  # (B, C', H, W) in [-1, 1]


class CycleGenerator(nn.Module):
    """The two CycleGAN generators: ``.ab`` (domain A = input images -> domain B = data) and
    ``.ba`` (B -> A). ``forward(z, y) = ab(y)``; ``z`` is ignored (CycleGAN has no noise)."""

    def __init__(self, z_dim: int = 0,  # ignored (kept for the common signature)
                 out_shape: tuple = (1, 28, 28),  # (C, H, W) of domain B (the images G makes)
                 cond_shape: tuple = (1, 28, 28),  # (C', H, W) of domain A (the input images)
                 width: int = 64,  # channels of each generator's first conv
                 n_blocks: int = 6,  # residual blocks per generator
                 norm: str = "in"):  # in | bn | ln | none
        super().__init__()
        self.z_dim, self.out_shape, self.cond_shape = z_dim, tuple(out_shape), tuple(cond_shape)
        self.ab = ResnetGenerator(cond_shape, out_shape, width=width, n_blocks=n_blocks, norm=norm)
        self.ba = ResnetGenerator(out_shape, cond_shape, width=width, n_blocks=n_blocks, norm=norm)

    def forward(self, z: Tensor | None, y: Tensor) -> Tensor:
        return self.ab(y)  # (B, *out_shape)


class CycleDiscriminator(nn.Module):
    """The two CycleGAN discriminators: ``.b`` judges domain-B images (the data), ``.a`` judges
    domain-A images. ``forward(x, y=None) = b(x)``, a (B, h, w) map of logits."""

    def __init__(self, in_shape: tuple = (1, 28, 28),  # (C, H, W) of domain B
                 cond_shape: tuple = (1, 28, 28),  # (C', H', W') of domain A
                 width: int = 64,  # channels of each PatchGAN's first conv
                 n_layers: int = 2,  # stride-2 convs per PatchGAN (3 = the paper's 70x70 patches)
                 norm: str = "in",  # in | bn | ln | none (the paper: instance norm)
                 sn: bool = False):  # spectral normalisation on every conv
        super().__init__()
        self.in_shape, self.cond_shape = tuple(in_shape), tuple(cond_shape)
        kw = dict(conditional=False, width=width, n_layers=n_layers, norm=norm, sn=sn)
        self.b = PatchDiscriminator(in_shape, **kw)
        self.a = PatchDiscriminator(cond_shape, **kw)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.b(x)  # (B, h, w) raw logits


__all__ = ["CycleDiscriminator", "CycleGenerator", "ResnetBlock", "ResnetGenerator"]
