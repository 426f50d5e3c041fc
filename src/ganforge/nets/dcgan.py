"""DCGAN (Radford et al. 2015): strided transposed convs in G, strided convs in D, no pooling,
batch norm, ReLU in G (tanh output), LeakyReLU(0.2) in D.

Image sizes are base * 2^n with base 4 or 7: 28 (7->14->28), 32, 64, 128, ...; non-square H x W
when the longer side is a multiple of the shorter side's 2^n (32x64 from 4x8, 28x56, 64x96): G's first
and D's last kernel are then (base_h, base_w) (see :func:`~.layers.image_plan_hw`).
The WGAN critics reuse D: with batch norm under weight clipping (as in the WGAN paper's code),
with ``norm="none"`` or ``"ln"`` under a gradient penalty (no batch norm in a penalised critic);
D has no sigmoid (it returns raw scores; the loss decides what they mean).

Class conditioning (``num_classes > 0``): G takes the one-hot label next to z (Mirza & Osindero
2014); D takes it as K constant input planes (``cond="concat"``), as a projection on its pooled
last features (``"projection"``, Miyato & Koyama 2018) or through a class head (``"acgan"``,
Odena et al. 2017). D also offers minibatch standard deviation (``mbstd``, Karras et al. 2018)
and PacGAN packing (``pack``, Lin et al. 2018).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import (LabelHead, MinibatchStdDev, activation, check_d_options, conv_label_planes, image_plan_hw,
                     labels, maybe_sn, norm2d, one_hot, pack_samples)


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int = 100, out_shape: tuple = (1, 28, 28),
                 num_classes: int = 0,  # classes K; > 0: the one-hot label is appended to z
                 width: int = 64,  # channels before the last layer (ngf); doubles per lower stage
                 norm: str = "bn",
                 act: str = "relu"):
        super().__init__()
        c_out, h, w = out_shape
        base, n = image_plan_hw(h, w, "DCGAN")  # base (H, W) >> n
        self.z_dim, self.out_shape, self.num_classes = z_dim, tuple(out_shape), num_classes
        ch = width * 2 ** (n - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim + num_classes, ch, base, 1, 0, bias=False),  # (B, ch, base_h, base_w)
            norm2d(norm, ch), activation(act)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), norm2d(norm, ch // 2),
                       activation(act)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, c_out, 4, 2, 1), nn.Tanh()]  # (B, C, H, W) in [-1, 1]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        y = labels(y, self.num_classes, z.shape[0], "DCGANGenerator")
        if y is not None:
            z = torch.cat([z, one_hot(y, self.num_classes).to(z.dtype)], 1)  # (B, z_dim + K)
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple = (1, 28, 28),
                 num_classes: int = 0,  # classes K; 0: unconditional (labels ignored)
                 width: int = 64,  # channels of the first conv (ndf); doubles per stage
                 norm: str = "bn",  # bn | ln | in | none  (none/ln for WGAN-GP critics)
                 act: str = "lrelu0.2",
                 dropout: float = 0.0,
                 sn: bool = False,  # spectral normalisation on every conv (and label layer)
                 cond: str = "concat",  # label conditioning: concat | projection | acgan
                 mbstd: int = 0,  # minibatch-stddev group size before the last conv; 0 = off
                 pack: int = 1):  # PacGAN: samples judged together (the batch must divide by it)
        super().__init__()
        check_d_options(cond, num_classes, pack)
        c_in, h, w = in_shape
        base, n = image_plan_hw(h, w, "DCGAN")  # base (H, W) >> n
        self.in_shape, self.num_classes, self.cond, self.pack = tuple(in_shape), num_classes, cond, pack
        ch = width
        c_first = c_in * pack + (num_classes if cond == "concat" else 0)
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(c_first, ch, 4, 2, 1), sn), activation(act)]
        for _ in range(n - 1):
            layers += [maybe_sn(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none"), sn),
                       norm2d(norm, ch * 2), activation(act)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            ch *= 2
        if mbstd > 0:
            layers.append(MinibatchStdDev(mbstd))  # (B, ch + 1, base_h, base_w)
        layers.append(maybe_sn(nn.Conv2d(ch + (mbstd > 0), 1, base, 1, 0), sn))  # (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)  # one Sequential: the unconditional state_dict keys stay as before
        self._tail = len(layers) - 1 - (mbstd > 0)  # index of the first layer after the last features
        self.head = LabelHead(cond, num_classes, ch, sn)  # projection / class head on sum-pooled features

    def forward(self, x: Tensor, y: Tensor | None = None):
        x = pack_samples(x, self.pack)  # (B / pack, pack * C, H, W)
        y = labels(y, self.num_classes, x.shape[0], "DCGANDiscriminator")
        h, first = x, 0
        if y is not None and self.cond == "concat":
            # the first conv on [x, K label planes], computed without the planes (same numbers)
            h, first = conv_label_planes(self.net[0], x, y, self.num_classes), 1
        for i, layer in enumerate(self.net):
            if i < first:
                continue
            if i == self._tail:
                feats = h  # (B, ch, base_h, base_w): the last features, before [mbstd and] the last conv
            h = layer(h)
        return self.head(h.view(-1), feats.sum((2, 3)), y)  # (B,) raw scores / logits [, (B, K)]
