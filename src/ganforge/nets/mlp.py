"""Multilayer-perceptron G and D (Goodfellow et al. 2014; the seeds' layout).

G: z -> Linear(4h) -> BN -> ReLU -> Linear(2h) -> BN -> ReLU -> Linear(h) -> BN -> ReLU -> Linear(out)
D: x -> Linear(h) -> [BN] -> LeakyReLU -> [Dropout] -> Linear(h/2) -> ... -> Linear(1) (a logit)

Works for vectors (toy data) and for images (flattened; G ends in tanh and is reshaped).

Class conditioning (``num_classes > 0``, Mirza & Osindero 2014): G takes the one-hot label next
to z; D takes it next to its flattened input (``cond="concat"``), as a projection on its last
hidden features (``"projection"``, Miyato & Koyama 2018) or through a class head (``"acgan"``,
Odena et al. 2017). ``pack`` is PacGAN's packing (Lin et al. 2018).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .layers import (LabelHead, activation, check_d_options, concat_labels, labels, maybe_sn, norm1d, one_hot,
                     pack_samples)


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int = 100, out_shape: tuple = (2,),
                 num_classes: int = 0,  # classes K; > 0: the one-hot label is appended to z
                 hidden: int = 256,  # width of the last hidden layer; earlier ones are 4h, 2h
                 layers: int = 3,  # hidden layers (widths h * 2^(layers-1), ..., 2h, h)
                 norm: str = "bn",  # bn | ln | none
                 act: str = "relu",
                 dropout: float = 0.0,
                 out_act: str = "auto"):  # auto: tanh for images, none for vectors
        super().__init__()
        self.z_dim, self.out_shape, self.num_classes = z_dim, tuple(out_shape), num_classes
        widths = [hidden * 2 ** (layers - 1 - i) for i in range(layers)]
        blocks: list[nn.Module] = []
        prev = z_dim + num_classes
        for w in widths:
            blocks += [nn.Linear(prev, w), norm1d(norm, w), activation(act)]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            prev = w
        blocks.append(nn.Linear(prev, math.prod(self.out_shape)))
        if out_act == "auto":
            out_act = "tanh" if len(self.out_shape) == 3 else "none"
        blocks.append(activation(out_act))
        self.net = nn.Sequential(*blocks)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        y = labels(y, self.num_classes, z.shape[0], "MLPGenerator")
        if y is not None:
            z = torch.cat([z, one_hot(y, self.num_classes).to(z.dtype)], 1)  # (B, z_dim + K)
        return self.net(z).view(z.shape[0], *self.out_shape)  # (B, *out_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple = (2,),
                 num_classes: int = 0,  # classes K; 0: unconditional (labels ignored)
                 hidden: int = 256,  # width of the first hidden layer; later ones halve
                 layers: int = 2,
                 norm: str = "none",  # bn | ln | none (BN in D couples the samples of a batch)
                 act: str = "lrelu0.2",
                 dropout: float = 0.0,
                 sn: bool = False,  # spectral normalisation on every linear layer (and label layer)
                 cond: str = "concat",  # label conditioning: concat | projection | acgan
                 pack: int = 1):  # PacGAN: samples judged together (the batch must divide by it)
        super().__init__()
        check_d_options(cond, num_classes, pack)
        self.in_shape, self.num_classes, self.cond, self.pack = tuple(in_shape), num_classes, cond, pack
        blocks: list[nn.Module] = [nn.Flatten()]
        prev = math.prod(self.in_shape) * pack + (num_classes if cond == "concat" else 0)
        for i in range(layers):
            w = max(hidden // 2 ** i, 1)
            blocks += [maybe_sn(nn.Linear(prev, w), sn), norm1d(norm, w), activation(act)]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            prev = w
        blocks.append(maybe_sn(nn.Linear(prev, 1), sn))
        self.net = nn.Sequential(*blocks)  # one Sequential: the unconditional state_dict keys stay as before
        self.head = LabelHead(cond, num_classes, prev, sn)  # projection / class head on the last hidden layer

    def forward(self, x: Tensor, y: Tensor | None = None):
        x = pack_samples(x.flatten(1), self.pack)  # (B / pack, pack * F)
        y = labels(y, self.num_classes, x.shape[0], "MLPDiscriminator")
        if y is not None and self.cond == "concat":
            x = concat_labels(x, y, self.num_classes)  # (B, F + K)
        *body, last = self.net
        h = x
        for layer in body:
            h = layer(h)  # (B, last hidden width)
        return self.head(last(h).view(-1), h, y)  # (B,) logits [, (B, K) class logits]
