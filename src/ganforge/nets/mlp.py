"""Multilayer-perceptron G and D (Goodfellow et al. 2014; the seeds' layout).

G: z -> Linear(4h) -> BN -> ReLU -> Linear(2h) -> BN -> ReLU -> Linear(h) -> BN -> ReLU -> Linear(out)
D: x -> Linear(h) -> [BN] -> LeakyReLU -> [Dropout] -> Linear(h/2) -> ... -> Linear(1) (a logit)

Works for vectors (toy data) and for images (flattened; G ends in tanh and is reshaped).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from .layers import activation, maybe_sn, norm1d


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int = 100, out_shape: tuple = (2,),
                 hidden: int = 256,  # width of the last hidden layer; earlier ones are 4h, 2h
                 layers: int = 3,  # hidden layers (widths h * 2^(layers-1), ..., 2h, h)
                 norm: str = "bn",  # bn | ln | none
                 act: str = "relu",
                 dropout: float = 0.0,
                 out_act: str = "auto"):  # auto: tanh for images, none for vectors
        super().__init__()
        self.z_dim, self.out_shape = z_dim, tuple(out_shape)
        widths = [hidden * 2 ** (layers - 1 - i) for i in range(layers)]
        blocks: list[nn.Module] = []
        prev = z_dim
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
        return self.net(z).view(z.shape[0], *self.out_shape)  # (B, *out_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple = (2,),
                 hidden: int = 256,  # width of the first hidden layer; later ones halve
                 layers: int = 2,
                 norm: str = "none",  # bn | ln | none (BN in D couples the samples of a batch)
                 act: str = "lrelu0.2",
                 dropout: float = 0.0,
                 sn: bool = False):  # spectral normalisation on every linear layer
        super().__init__()
        self.in_shape = tuple(in_shape)
        blocks: list[nn.Module] = [nn.Flatten()]
        prev = math.prod(self.in_shape)
        for i in range(layers):
            w = max(hidden // 2 ** i, 1)
            blocks += [maybe_sn(nn.Linear(prev, w), sn), norm1d(norm, w), activation(act)]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            prev = w
        blocks.append(maybe_sn(nn.Linear(prev, 1), sn))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(x).view(-1)  # (B,) logits
