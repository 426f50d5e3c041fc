"""SAGAN (Zhang et al. 2019, "Self-Attention Generative Adversarial Networks") for 28/32/64 px images.

G: z -> linear -> (width, base, base), base 4 (32/64 px) or 7 (28 px) -> up-ResBlocks to the image
   size, a self-attention block after the block that reaches ``attn_res`` -> BN - ReLU - conv3x3 -
   tanh. With num_classes > 0 the blocks' batch norms are class-conditional (per-class gain and
   bias). Spectral norm on every conv / linear of G as well as D: SAGAN's finding that it
   stabilises G too.
D: optimized first down-ResBlock -> down-ResBlocks to 8x8 (7x7 for 28 px) -> one more ResBlock,
   the same kind of self-attention block after the block at ``attn_res`` -> ReLU -> global sum
   pooling -> linear, plus a projection (Miyato & Koyama 2018) when num_classes > 0.

SAGAN trains with the hinge loss and the two time-scale update rule (lr_G 1e-4, lr_D 4e-4, Adam
betas (0, 0.9)). The attention block (``layers.SelfAttention2d``) starts as the identity (its gain
gamma is 0) and learns how much non-local context to mix in.

Every block has ``width`` channels. The defaults are CPU-sized (a 28 px G+D step at batch 32
costs about 2.5x a default DCGAN step on one core; width 64 about 6.5x); SAGAN's ImageNet nets
(128 px) use 64 * (1..16) channels with attention at 32x32 feature maps in both nets.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .biggan import _attn_index
from .layers import (ConditionalBatchNorm2d, DownResBlock, LabelHead, SelfAttention2d, UpResBlock, image_plan, labels,
                     maybe_sn, square_size)


class SAGANGenerator(nn.Module):
    def __init__(self, z_dim: int = 128, out_shape: tuple = (3, 32, 32),
                 num_classes: int = 0,  # classes K; > 0: class-conditional batch norm in the blocks
                 width: int = 32,  # channels of every block (CPU-sized; SAGAN ImageNet: 64 doubling to 1024)
                 attn_res: int | None = None,  # resolution of the self-attention block; None: half the size; 0: none
                 sn: bool = True):  # spectral norm on every conv / linear of G (SAGAN)
        super().__init__()
        size = square_size(out_shape, "SAGAN")
        self.base, n = image_plan(size, "SAGAN")
        self.z_dim, self.out_shape, self.num_classes, self.width = z_dim, tuple(out_shape), num_classes, width
        self.stem = maybe_sn(nn.Linear(z_dim, width * self.base ** 2), sn)  # (B, width * base * base)
        cbn = partial(ConditionalBatchNorm2d, num_classes=num_classes)
        self.blocks = nn.ModuleList(UpResBlock(width, width, norm=cbn, sn=sn) for _ in range(n))
        self.attn_after = _attn_index(attn_res, [self.base * 2 ** (i + 1) for i in range(n)], size, "SAGAN G")
        self.attn = SelfAttention2d(width, sn=sn) if self.attn_after >= 0 else None
        self.out_norm = nn.BatchNorm2d(width)
        self.out_conv = maybe_sn(nn.Conv2d(width, out_shape[0], 3, 1, 1), sn)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        y = labels(y, self.num_classes, z.shape[0], "SAGANGenerator")
        h = self.stem(z).view(z.shape[0], self.width, self.base, self.base)  # (B, width, base, base)
        for i, block in enumerate(self.blocks):
            h = block(h, y)  # (B, width, 2H, 2W)
            if i == self.attn_after:
                h = self.attn(h)  # (B, width, H, W)
        return torch.tanh(self.out_conv(F.relu(self.out_norm(h))))  # (B, C, H, W) in [-1, 1]


class SAGANDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple = (3, 32, 32),
                 num_classes: int = 0,  # classes K; > 0: projection discriminator
                 width: int = 32,  # channels of every block (CPU-sized; SAGAN ImageNet: 64 doubling to 1024)
                 attn_res: int | None = None,  # resolution of the self-attention block; None: half the size; 0: none
                 sn: bool = True):  # spectral norm on every conv / linear and the class embedding
        super().__init__()
        size = square_size(in_shape, "SAGAN")
        image_plan(size, "SAGAN")  # the sizes G can make
        self.in_shape, self.num_classes = tuple(in_shape), num_classes
        blocks = [DownResBlock(in_shape[0], width, down=True, preact=False, sn=sn)]  # optimized first block
        resolutions = [size // 2]  # after each block
        while resolutions[-1] > 8 and resolutions[-1] % 2 == 0:
            blocks.append(DownResBlock(width, width, down=True, sn=sn))
            resolutions.append(resolutions[-1] // 2)
        blocks.append(DownResBlock(width, width, down=False, sn=sn))
        resolutions.append(resolutions[-1])
        self.blocks = nn.ModuleList(blocks)  # -> (B, width, res, res), res 8 (32/64 px) or 7 (28 px)
        self.attn_after = _attn_index(attn_res, resolutions, size, "SAGAN D")
        self.attn = SelfAttention2d(width, sn=sn) if self.attn_after >= 0 else None
        self.linear = maybe_sn(nn.Linear(width, 1), sn)
        self.head = LabelHead("projection", num_classes, width, sn)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        y = labels(y, self.num_classes, x.shape[0], "SAGANDiscriminator")
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attn_after:
                h = self.attn(h)
        h = F.relu(h).sum((2, 3))  # (B, width): global sum pooling
        return self.head(self.linear(h).view(-1), h, y)  # (B,) logits
