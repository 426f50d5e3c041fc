"""Semi-supervised GAN nets (Salimans et al. 2016, sec. 5): the DCGAN generator, and a
discriminator that is a K-class image classifier.

The discriminator's K logits are the real classes; the (K+1)-th class, "generated", has its logit
fixed at 0, so ``logsumexp`` of the K logits is the ordinary real/fake logit
(:mod:`ganforge.losses_ssl`). Its forward returns the logits and the features that feature
matching and the linear probe read: the spatially averaged output of the last conv stage.

Two bodies (``model.d.arch``): ``conv``, strided convolutions as DCGAN's D (the default), and
``mlp``, the dense net of the authors' MNIST experiment (hidden widths ``model.d.hidden``, 1000-500-
250-250-250 there, with weight normalisation and Gaussian noise before every layer).

No batch norm by default: D sees labelled, unlabelled and generated batches in separate calls,
and batch statistics would differ between them (the paper uses weight normalisation and dropout;
here dropout and, optionally, weight normalisation, spectral normalisation and Gaussian noise as in
the authors' MNIST code: ``model.d.weight_norm``, ``model.d.noise_in`` / ``model.d.noise``, off by
default).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

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


def _normed(layer: nn.Module, sn: bool, wn: bool) -> nn.Module:
    """The layer with spectral or weight normalisation (Salimans & Kingma 2016: w = g v / ||v||)."""
    return _weight_norm(layer) if wn else maybe_sn(layer, sn)


class SSLDiscriminator(nn.Module):
    """x (B, C, H, W) -> (class logits (B, K), features (B, F)).

    ``arch="conv"``: strided 4x4 convs (as DCGAN's D), each stage followed by a 3x3 conv, then
    global average pooling (the features) and a linear layer to K. ``arch="mlp"``: the flattened
    image through dense layers of widths ``hidden`` (the features: the last one's activations),
    then a linear layer to K; noise and dropout act before every dense layer after the first."""

    def __init__(self, in_shape: tuple = (1, 28, 28),  # (C, H, W) of the images judged
                 num_classes: int = 10,  # K real classes (set from the dataset)
                 arch: str = "conv",  # conv (strided convs) | mlp (dense layers, the authors' MNIST D)
                 width: int = 32,  # conv: channels of the first stage; doubles per stage
                 hidden: tuple = (1000, 500, 250, 250, 250),  # mlp: widths of the dense layers
                 norm: str = "none",  # conv: none | ln | in | bn (bn mixes the statistics of its separate batches)
                 act: str = "lrelu0.2",
                 dropout: float = 0.2,  # dropout after every stage (the paper: 0.5 on CIFAR-10)
                 sn: bool = False,  # spectral normalisation on every conv / dense layer and the last linear layer
                 weight_norm: bool = False,  # weight normalisation on the same layers (the authors' code)
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
        if arch not in ("conv", "mlp"):
            raise ValueError(f"arch must be conv or mlp, got {arch!r}")
        if sn and weight_norm:
            raise ValueError("choose spectral normalisation (sn) or weight_norm, not both")
        self.in_shape, self.num_classes = tuple(in_shape), int(num_classes)
        self.input_noise = GaussianNoise(noise_in)  # no parameters: the weight names do not depend on it

        def regularise() -> list[nn.Module]:  # what follows every stage's activation
            return ([GaussianNoise(noise)] if noise > 0 else []) + ([nn.Dropout(dropout)] if dropout > 0 else [])

        layers: list[nn.Module] = []
        if arch == "conv":
            _, n = image_plan(h, "SSL D")
            ch_in, ch = c, width
            for i in range(n):
                layers += [_normed(nn.Conv2d(ch_in, ch, 4, 2, 1), sn, weight_norm), activation(act),
                           _normed(nn.Conv2d(ch, ch, 3, 1, 1), sn, weight_norm)]
                if norm != "none":
                    layers.append(norm2d(norm, ch))
                layers.append(activation(act))
                layers += regularise()
                ch_in, ch = ch, ch * 2
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]  # global average pooling: (B, ch_in)
            head: list[nn.Module] = []
        else:
            hidden = [int(v) for v in (hidden if isinstance(hidden, (list, tuple)) else [hidden])]
            if not hidden or min(hidden) < 1:
                raise ValueError(f"hidden must list one or more positive widths, got {hidden}")
            if norm != "none":
                raise ValueError("the mlp body takes no norm layer (norm=none); use weight_norm or sn")
            layers.append(nn.Flatten())
            ch_in = c * h * w
            for i, ch in enumerate(hidden):
                if i > 0:
                    layers += regularise()
                layers += [_normed(nn.Linear(ch_in, ch), sn, weight_norm), activation(act)]
                ch_in = ch
            head = regularise()  # the features are read before it, as the authors' feature matching does
        self.body = nn.Sequential(*layers)  # (B, ch_in): the features
        self.head = nn.Sequential(*head)
        self.feature_dim = ch_in
        self.classify = _normed(nn.Linear(ch_in, num_classes), sn, weight_norm)

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.shape[1:] != self.in_shape:
            raise ValueError(f"x must be (B, {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}")
        feats = self.body(self.input_noise(x))  # (B, F)
        return self.classify(self.head(feats)), feats  # (B, K), (B, F)


__all__ = ["DCGANGenerator", "GaussianNoise", "SSLDiscriminator"]
