"""SNGAN ResNet G and D (Miyato et al. 2018), scaled for 28/32/64 px images.

G: z -> linear -> (width, base, base), base 4 (32/64 px) or 7 (28 px) -> up-ResBlocks to the
   image size -> BN - ReLU - conv3x3 - tanh. With num_classes > 0 the blocks' batch norms are
   class-conditional (per-class gain and bias; Miyato & Koyama 2018); the last one stays plain.
D: optimized first ResBlock (down) -> down-ResBlocks to 8x8 (7x7 for 28 px) -> two ResBlocks at
   that resolution (SNGAN's CIFAR layout) -> ReLU -> global sum pooling -> linear. Spectral norm
   on every conv / linear by default; with num_classes > 0 a projection discriminator.

Every block has ``width`` channels (SNGAN's CIFAR nets; its 64 px nets double per stage instead).
D options: ``mbstd`` (minibatch std, Karras et al. 2018, before the last block) and ``pack``
(PacGAN, Lin et al. 2018).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import (ConditionalBatchNorm2d, DownResBlock, LabelHead, MinibatchStdDev, UpResBlock,
                     check_d_options, concat_labels, image_plan, labels, maybe_sn, pack_samples, square_size)


class ResNetGenerator(nn.Module):
    def __init__(self, z_dim: int = 128, out_shape: tuple = (3, 32, 32),
                 num_classes: int = 0,  # classes K; > 0: class-conditional batch norm in the blocks
                 width: int = 256):  # channels of every block (SNGAN CIFAR G: 256)
        super().__init__()
        size = square_size(out_shape, "ResNet")
        self.base, n = image_plan(size, "ResNet")
        self.z_dim, self.out_shape, self.num_classes, self.width = z_dim, tuple(out_shape), num_classes, width
        self.stem = nn.Linear(z_dim, width * self.base ** 2)  # (B, width * base * base)
        cbn = partial(ConditionalBatchNorm2d, num_classes=num_classes)
        self.blocks = nn.ModuleList(UpResBlock(width, width, norm=cbn) for _ in range(n))
        self.out_norm = nn.BatchNorm2d(width)
        self.out_conv = nn.Conv2d(width, out_shape[0], 3, 1, 1)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        y = labels(y, self.num_classes, z.shape[0], "ResNetGenerator")
        h = self.stem(z).view(z.shape[0], self.width, self.base, self.base)  # (B, width, base, base)
        for block in self.blocks:
            h = block(h, y)  # (B, width, 2H, 2W)
        return torch.tanh(self.out_conv(F.relu(self.out_norm(h))))  # (B, C, H, W) in [-1, 1]


class ResNetDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple = (3, 32, 32),
                 num_classes: int = 0,  # classes K; 0: unconditional (labels ignored)
                 width: int = 128,  # channels of every block (SNGAN CIFAR D: 128)
                 sn: bool = True,  # spectral norm on every conv / linear (and the class embedding)
                 cond: str = "projection",  # label conditioning: projection | concat | acgan
                 mbstd: int = 0,  # minibatch-stddev group size before the last block; 0 = off
                 pack: int = 1):  # PacGAN: samples judged together (the batch must divide by it)
        super().__init__()
        check_d_options(cond, num_classes, pack)
        size = square_size(in_shape, "ResNet")
        image_plan(size, "ResNet")  # the sizes G can make
        self.in_shape, self.num_classes, self.cond, self.pack = tuple(in_shape), num_classes, cond, pack
        c_first = in_shape[0] * pack + (num_classes if cond == "concat" else 0)
        blocks: list[nn.Module] = [DownResBlock(c_first, width, down=True, preact=False, sn=sn)]  # optimized
        res = size // 2
        while res > 8 and res % 2 == 0:
            blocks.append(DownResBlock(width, width, down=True, sn=sn))
            res //= 2
        blocks.append(DownResBlock(width, width, down=False, sn=sn))
        if mbstd > 0:
            blocks.append(MinibatchStdDev(mbstd))  # (B, width + 1, res, res)
        blocks.append(DownResBlock(width + int(mbstd > 0), width, down=False, sn=sn))
        self.blocks = nn.Sequential(*blocks)  # (B, width, res, res), res 8 (32/64 px) or 7 (28 px)
        self.linear = maybe_sn(nn.Linear(width, 1), sn)
        self.head = LabelHead(cond, num_classes, width, sn)  # projection (default) on the pooled features

    def forward(self, x: Tensor, y: Tensor | None = None):
        x = pack_samples(x, self.pack)  # (B / pack, pack * C, H, W)
        y = labels(y, self.num_classes, x.shape[0], "ResNetDiscriminator")
        if y is not None and self.cond == "concat":
            x = concat_labels(x, y, self.num_classes)  # (B, C + K, H, W)
        h = F.relu(self.blocks(x)).sum((2, 3))  # (B, width): global sum pooling
        return self.head(self.linear(h).view(-1), h, y)  # (B,) logits [, (B, K) class logits]
