"""StarGAN (Choi et al. 2018): one generator translating an image to any of K domains, and one
discriminator that both judges realism and classifies the domain.

- **G**: the image (B, C, H, W) and the target domain c are concatenated along channels (c as K
  constant planes), then c7s1-64, two 4x4 stride-2 downsamplings (x2 channels each), ``n_blocks``
  residual blocks (the paper: 6), two 4x4 stride-2 transposed convs, c7s1-C, tanh; instance norm
  and ReLU (the paper's). c is either class indices (B,) -> one-hot (one domain per image, as
  RaFD's expressions) or a float (B, K) vector (multi-hot attributes, as CelebA's hair colour,
  gender, age; any values, e.g. to interpolate). Any size works: the input is padded to a multiple
  of 4 and the output cropped back.
- **D**: a PatchGAN of ``n_layers`` 4x4 stride-2 convs (LeakyReLU 0.01, no norm, x2 channels
  each), then two heads on the last map: ``adv`` a 3x3 conv to a (B, h, w) map of realism logits
  (PatchGAN), and ``cls`` a conv whose kernel covers the whole map, giving domain logits (B, K).
  ``D(x)`` returns the pair ``(adv_logits, domain_logits)``.

The StarGAN objective (not here): D minimises an adversarial loss (WGAN-GP in the paper) plus
lambda_cls * the domain loss on real images with their own labels; G minimises the adversarial
loss plus lambda_cls * the domain loss of G(x, c_target) for c_target, plus lambda_rec *
|x - G(G(x, c_target), c_source)|_1 (:mod:`ganforge.losses_stargan`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cyclegan import ResnetBlock
from .layers import maybe_sn, norm2d
from .pix2pix import _check_image_shape, _check_input, crop, pad_to_multiple


def domain_vector(c: Tensor, num_domains: int, batch: int) -> Tensor:
    """Target domains as a float (B, K) vector: one-hot rows for class indices (B,), float (B, K)
    vectors (multi-hot attributes) as they are."""
    if c.is_floating_point():
        if c.shape != (batch, num_domains):
            raise ValueError(f"domain vectors must be ({batch}, {num_domains}), got {tuple(c.shape)}")
        return c
    if c.shape != (batch,):
        raise ValueError(f"domain indices must be ({batch},), got {tuple(c.shape)}")
    if c.numel() and (c.min() < 0 or c.max() >= num_domains):
        raise ValueError(f"domain indices must be in [0, {num_domains}), got {int(c.min())}..{int(c.max())}")
    return F.one_hot(c.long(), num_domains).float()


class StarGenerator(nn.Module):
    """x (B, *out_shape), target domain c (B,) or (B, K) -> x translated to c (B, *out_shape) in [-1, 1]."""

    def __init__(self, z_dim: int = 0,  # ignored: StarGAN has no noise (kept for the common signature)
                 out_shape: tuple = (1, 28, 28),  # (C, H, W) of the images, input and output
                 num_classes: int = 4,  # K: number of domains / attributes (the data's num_classes)
                 width: int = 64,  # channels of the first conv (x2, x4 after the downsamplings)
                 n_blocks: int = 6,  # residual blocks at 1/4 resolution (the paper: 6)
                 norm: str = "in"):  # in | bn | ln | none (the paper: instance norm)
        super().__init__()
        c, h, w = _check_image_shape("out_shape", out_shape)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if min(h, w) < 8:
            raise ValueError(f"StarGAN needs images of at least 8x8, got {h}x{w}")
        self.z_dim, self.out_shape, self.num_domains = z_dim, tuple(out_shape), int(num_classes)
        bias = norm != "bn"
        layers: list[nn.Module] = [nn.Conv2d(c + num_classes, width, 7, 1, 3, bias=bias), norm2d(norm, width),
                                   nn.ReLU()]  # (B, w, H, W)
        ch = width
        for _ in range(2):  # (B, 4w, H/4, W/4)
            layers += [nn.Conv2d(ch, 2 * ch, 4, 2, 1, bias=bias), norm2d(norm, 2 * ch), nn.ReLU()]
            ch *= 2
        layers += [ResnetBlock(ch, norm) for _ in range(n_blocks)]
        for _ in range(2):  # (B, w, H, W)
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=bias), norm2d(norm, ch // 2), nn.ReLU()]
            ch //= 2
        layers += [nn.Conv2d(ch, c, 7, 1, 3), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        _check_input(x, self.out_shape, "the source image x")
        onehot = domain_vector(c, self.num_domains, x.shape[0]).to(x.dtype)  # (B, K)
        h, pad = pad_to_multiple(x, 4)
        planes = onehot[:, :, None, None].expand(-1, -1, *h.shape[2:])  # (B, K, H', W')
        return crop(self.net(torch.cat([h, planes], 1)), pad)  # (B, C, H, W)


class StarDiscriminator(nn.Module):
    """x (B, *in_shape) -> (adv_logits (B, h, w), domain_logits (B, K))."""

    def __init__(self, in_shape: tuple = (1, 28, 28),  # (C, H, W) of the images judged
                 num_classes: int = 4,  # K: number of domains / attributes (the data's num_classes)
                 width: int = 64,  # channels of the first conv; doubles per layer
                 n_layers: int = 3,  # 4x4 stride-2 convs (the paper: 6 at 128 px -> a 2x2 map)
                 sn: bool = False):  # spectral normalisation on every conv
        super().__init__()
        c, h, w = _check_image_shape("in_shape", in_shape)
        if num_classes < 1 or n_layers < 1:
            raise ValueError(f"num_classes and n_layers must be >= 1, got {num_classes}, {n_layers}")
        mh, mw = h, w
        for _ in range(n_layers):
            mh, mw = mh // 2, mw // 2  # k4 s2 p1: floor(s / 2)
        if min(mh, mw) < 1:
            raise ValueError(f"images of {h}x{w} are too small for n_layers={n_layers}; lower n_layers")
        self.in_shape, self.num_domains, self.map_size = tuple(in_shape), int(num_classes), (mh, mw)
        layers: list[nn.Module] = []
        ch_in, ch = c, width
        for _ in range(n_layers):
            layers += [maybe_sn(nn.Conv2d(ch_in, ch, 4, 2, 1), sn), nn.LeakyReLU(0.01)]
            ch_in, ch = ch, ch * 2
        self.trunk = nn.Sequential(*layers)  # (B, ch_in, mh, mw)
        self.adv = maybe_sn(nn.Conv2d(ch_in, 1, 3, 1, 1, bias=False), sn)  # (B, 1, mh, mw)
        self.cls = maybe_sn(nn.Conv2d(ch_in, num_classes, (mh, mw), bias=False), sn)  # (B, K, 1, 1)

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_input(x, self.in_shape, "the image x")
        h = self.trunk(x)
        return self.adv(h).squeeze(1), self.cls(h).flatten(1)  # (B, mh, mw), (B, K)


__all__ = ["StarDiscriminator", "StarGenerator", "domain_vector"]
