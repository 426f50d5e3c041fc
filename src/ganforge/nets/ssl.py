"""Semi-supervised GAN nets (Salimans et al. 2016, sec. 5): the DCGAN generator, and a
discriminator that is a K-class image classifier.

The discriminator's K logits are the real classes; the (K+1)-th class, "generated", has its logit
fixed at 0, so ``logsumexp`` of the K logits is the ordinary real/fake logit
(:mod:`ganforge.losses_ssl`). Its forward returns the logits and the features that feature
matching and the linear probe read: the spatially averaged output of the last conv stage.

No batch norm by default: D sees labelled, unlabelled and generated batches in separate calls,
and batch statistics would differ between them (the paper uses weight normalisation and dropout;
here dropout and, optionally, spectral normalisation and Gaussian noise as in the authors' MNIST
code: ``model.d.noise_in`` / ``model.d.noise``, off by default).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .dcgan import DCGANGenerator
from .layers import activation, image_plan, maybe_sn, norm2d


class GaussianNoise(nn.Module):
    """Adds N(0, std^2) noise in training mode only (the authors' MNIST D puts it before every
    layer); the identity in eval mode, so classification and evaluation are deterministic."""

    def __init__(self, std: float):
        super().__init__()
        if std < 0:
            raise ValueError(f"the noise std must be >= 0, got {std}")
        self.std = float(std)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0:
            return x
        return x + self.std * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"std={self.std}"


class SSLDiscriminator(nn.Module):
    """x (B, C, H, W) -> (class logits (B, K), features (B, F)). Strided 4x4 convs (as DCGAN's D),
    each stage followed by a 3x3 conv, then global average pooling and a linear layer to K."""

    def __init__(self, in_shape: tuple = (1, 28, 28),  # (C, H, W) of the images judged
                 num_classes: int = 10,  # K real classes (set from the dataset)
                 width: int = 32,  # channels of the first stage; doubles per stage
                 norm: str = "none",  # none | ln | in | bn (bn mixes the statistics of its separate batches)
                 act: str = "lrelu0.2",
                 dropout: float = 0.2,  # dropout after every stage (the paper: 0.5 on CIFAR-10)
                 sn: bool = False,  # spectral normalisation on every conv and the last linear layer
                 noise_in: float = 0.0,  # std of Gaussian noise on the input in training (authors' MNIST code: 0.3)
                 noise: float = 0.0):  # std of Gaussian noise after every stage in training (their code: 0.5)
        super().__init__()
        c, h, w = in_shape
        if h != w:
            raise ValueError(f"the semi-supervised D needs square images, got {h}x{w}")
        if num_classes < 2:
            raise ValueError(f"a semi-supervised D classifies K >= 2 classes, got {num_classes}")
        if noise_in < 0 or noise < 0:
            raise ValueError(f"noise stds must be >= 0, got noise_in={noise_in}, noise={noise}")
        _, n = image_plan(h, "SSL D")
        self.in_shape, self.num_classes = tuple(in_shape), int(num_classes)
        self.input_noise = GaussianNoise(noise_in)  # no parameters: the weight names do not depend on it
        layers: list[nn.Module] = []
        ch_in, ch = c, width
        for i in range(n):
            layers += [maybe_sn(nn.Conv2d(ch_in, ch, 4, 2, 1), sn), activation(act),
                       maybe_sn(nn.Conv2d(ch, ch, 3, 1, 1), sn)]
            if norm != "none":
                layers.append(norm2d(norm, ch))
            layers.append(activation(act))
            if noise > 0:
                layers.append(GaussianNoise(noise))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            ch_in, ch = ch, ch * 2
        self.body = nn.Sequential(*layers)  # (B, ch_in, base, base)
        self.feature_dim = ch_in
        self.classify = maybe_sn(nn.Linear(ch_in, num_classes), sn)

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.shape[1:] != self.in_shape:
            raise ValueError(f"x must be (B, {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}")
        feats = self.body(self.input_noise(x)).mean((2, 3))  # (B, F)
        return self.classify(feats), feats  # (B, K), (B, F)


__all__ = ["DCGANGenerator", "GaussianNoise", "SSLDiscriminator"]
