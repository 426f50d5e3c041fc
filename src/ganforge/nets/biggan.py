"""BigGAN (Brock et al. 2019) scaled to small images (28/32/64 px).

G: z is split into one chunk for the stem and one per block (hierarchical latents). The stem maps
   its chunk linearly to (width, base, base), base 4 (32/64 px) or 7 (28 px); each up-ResBlock's
   batch norms take gain and bias as linear functions of c = [its z chunk, shared class
   embedding] (the chunk alone when unconditional); a self-attention block (SAGAN, Zhang et al.
   2019) follows the block that reaches ``attn_res``; then BN - ReLU - conv3x3 - tanh.
   Spectral norm on G's convs and linears too, as in BigGAN.
D: the SNGAN ResNet D layout (optimized block, down-ResBlocks to 8x8 or 7x7, two more blocks,
   ReLU, sum pooling, linear) with the same self-attention block, spectral norm, and a
   projection (Miyato & Koyama 2018) when num_classes > 0.

Every block has ``width`` channels (BigGAN's CIFAR nets: 4 * 64). BigGAN's orthogonal
regularisation of G is ``layers.orthogonal_penalty``; the ``ortho`` objective term uses it.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import (DownResBlock, LabelHead, LinearConditionalBatchNorm2d, SelfAttention2d, UpResBlock,
                     check_d_options, concat_labels, image_plan, label_rows, labels, maybe_sn, square_size)


def _attn_index(attn_res: int | None, resolutions: list[int], size: int, who: str) -> int:
    """Index of the block after which self-attention goes (-1: none). None: half the image size."""
    if attn_res is None:
        attn_res = size // 2
    if attn_res == 0:
        return -1
    if attn_res not in resolutions:
        raise ValueError(f"{who}: attn_res={attn_res} is not a block resolution for {size} px images; "
                         f"choose from {', '.join(map(str, sorted(set(resolutions))))} or 0 (none)")
    return resolutions.index(attn_res)


class BigGANGenerator(nn.Module):
    def __init__(self, z_dim: int = 120, out_shape: tuple = (3, 32, 32),
                 num_classes: int = 0,  # classes K; > 0: a shared class embedding conditions every block
                 width: int = 256,  # channels of every block (BigGAN CIFAR: 4 * 64)
                 shared_dim: int = 32,  # size of the shared class embedding
                 attn_res: int | None = None,  # resolution of the self-attention block; None: half the size; 0: none
                 sn: bool = True):  # spectral norm on every conv / linear of G (BigGAN)
        super().__init__()
        size = square_size(out_shape, "BigGAN")
        self.base, n = image_plan(size, "BigGAN")
        if z_dim < n + 1:
            raise ValueError(f"BigGAN splits z into {n + 1} chunks for {size} px images: z_dim must be >= {n + 1}")
        self.z_dim, self.out_shape, self.num_classes, self.width = z_dim, tuple(out_shape), num_classes, width
        self.chunks = [z_dim // (n + 1) + (i < z_dim % (n + 1)) for i in range(n + 1)]  # stem, block 1..n
        self.stem = maybe_sn(nn.Linear(self.chunks[0], width * self.base ** 2), sn)  # (B, width * base * base)
        self.shared = nn.Embedding(num_classes, shared_dim) if num_classes > 0 else None
        extra = shared_dim if num_classes > 0 else 0
        self.blocks = nn.ModuleList(
            UpResBlock(width, width, norm=partial(LinearConditionalBatchNorm2d, cond_dim=chunk + extra, sn=sn), sn=sn)
            for chunk in self.chunks[1:])
        self.attn_after = _attn_index(attn_res, [self.base * 2 ** (i + 1) for i in range(n)], size, "BigGAN G")
        self.attn = SelfAttention2d(width, sn=sn) if self.attn_after >= 0 else None
        self.out_norm = nn.BatchNorm2d(width)
        self.out_conv = maybe_sn(nn.Conv2d(width, out_shape[0], 3, 1, 1), sn)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        y = labels(y, self.num_classes, z.shape[0], "BigGANGenerator")
        zs = torch.split(z, self.chunks, dim=1)  # (B, chunk_0), ..., (B, chunk_n)
        h = self.stem(zs[0]).view(z.shape[0], self.width, self.base, self.base)  # (B, width, base, base)
        shared = label_rows(self.shared.weight, y) if y is not None else None  # (B, shared_dim)
        for i, block in enumerate(self.blocks):
            c = zs[i + 1] if shared is None else torch.cat([zs[i + 1], shared], 1)  # (B, cond_dim)
            h = block(h, c)  # (B, width, 2H, 2W)
            if i == self.attn_after:
                h = self.attn(h)
        return torch.tanh(self.out_conv(F.relu(self.out_norm(h))))  # (B, C, H, W) in [-1, 1]


class BigGANDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple = (3, 32, 32),
                 num_classes: int = 0,  # classes K; 0: unconditional (labels ignored)
                 width: int = 256,  # channels of every block (BigGAN CIFAR: 4 * 64)
                 attn_res: int | None = None,  # resolution of the self-attention block; None: half the size; 0: none
                 sn: bool = True,  # spectral norm on every conv / linear (and the class embedding)
                 cond: str = "projection"):  # label conditioning: projection | concat | acgan
        super().__init__()
        check_d_options(cond, num_classes, 1)
        size = square_size(in_shape, "BigGAN")
        image_plan(size, "BigGAN")  # the sizes G can make
        self.in_shape, self.num_classes, self.cond = tuple(in_shape), num_classes, cond
        c_first = in_shape[0] + (num_classes if cond == "concat" else 0)
        blocks = [DownResBlock(c_first, width, down=True, preact=False, sn=sn)]  # optimized first block
        resolutions = [size // 2]  # after each block
        while resolutions[-1] > 8 and resolutions[-1] % 2 == 0:
            blocks.append(DownResBlock(width, width, down=True, sn=sn))
            resolutions.append(resolutions[-1] // 2)
        for _ in range(2):
            blocks.append(DownResBlock(width, width, down=False, sn=sn))
            resolutions.append(resolutions[-1])
        self.blocks = nn.ModuleList(blocks)  # -> (B, width, res, res), res 8 (32/64 px) or 7 (28 px)
        self.attn_after = _attn_index(attn_res, resolutions, size, "BigGAN D")
        self.attn = SelfAttention2d(width, sn=sn) if self.attn_after >= 0 else None
        self.linear = maybe_sn(nn.Linear(width, 1), sn)
        self.head = LabelHead(cond, num_classes, width, sn)  # projection (default) on the pooled features

    def forward(self, x: Tensor, y: Tensor | None = None):
        y = labels(y, self.num_classes, x.shape[0], "BigGANDiscriminator")
        if y is not None and self.cond == "concat":
            x = concat_labels(x, y, self.num_classes)  # (B, C + K, H, W)
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attn_after:
                h = self.attn(h)
        h = F.relu(h).sum((2, 3))  # (B, width): global sum pooling
        return self.head(self.linear(h).view(-1), h, y)  # (B,) logits [, (B, K) class logits]
