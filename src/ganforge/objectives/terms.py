"""G-side loss terms, weighted by ``loss.terms``: ``fn(*, fake, real, y, G) -> scalar``.

Terms that an objective reads itself (ACGAN's ``aux``, CycleGAN's ``cycle`` / ``identity``) are
declared by the task that owns that objective (:attr:`ganforge.tasks.Task.own_terms`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import Registry

TERMS = Registry("loss term", check=callable)

_FEATURE_NET = {}


def _feature_net(device) -> nn.Module:
    """The shipped Fashion-MNIST classifier (frozen) as an offline perceptual feature network."""
    key = str(device)
    if key not in _FEATURE_NET:
        from ..features import get_feature_extractor
        _FEATURE_NET[key] = get_feature_extractor("fmnist", device=device)
    return _FEATURE_NET[key]


@TERMS.register("l1", help="pixel L1 distance of G(y) to the target x (pix2pix, lambda 100)")
def term_l1(*, fake: Tensor, real: Tensor, **_) -> Tensor:
    return (fake - real).abs().mean()


@TERMS.register("l2", help="pixel mean squared error of G(y) to the target x (SRGAN's MSE content loss)")
def term_l2(*, fake: Tensor, real: Tensor, **_) -> Tensor:
    return (fake - real).pow(2).mean()


@TERMS.register("feature", help="MSE between the frozen fmnist classifier's features of G(y) and x "
                                "(SRGAN's feature-space content loss with an offline network)")
def term_feature(*, fake: Tensor, real: Tensor, **_) -> Tensor:
    ext = _feature_net(fake.device)
    f_fake, _ = ext.net.features_and_logits(ext.preprocess(fake))
    with torch.no_grad():
        f_real, _ = ext.net.features_and_logits(ext.preprocess(real))
    return (f_fake - f_real).pow(2).mean()


def fmnist_feature_maps(ext, x: Tensor) -> list[Tensor]:
    """The feature maps after each ReLU of the shipped classifier's conv trunk: (B, 32, 28, 28),
    (B, 64, 14, 14), (B, 128, 7, 7) for 28 px input."""
    h, maps = ext.preprocess(x), []
    for layer in ext.net.trunk:
        h = layer(h)
        if isinstance(layer, nn.ReLU):
            maps.append(h)
    return maps


@TERMS.register("style", help="Gatys et al. 2016 style loss: mean squared Gram-matrix difference of the frozen fmnist "
                              "classifier's three conv feature maps of G(y) and of the target x (weights ~1e3)")
def term_style(*, fake: Tensor, real: Tensor, **_) -> Tensor:
    from ..style import style_loss
    ext = _feature_net(fake.device)
    with torch.no_grad():
        target = fmnist_feature_maps(ext, real)
    return style_loss(fake_features=fmnist_feature_maps(ext, fake), style_features=target)


@TERMS.register("ortho", help="BigGAN's orthogonal regularisation of G's weights (beta 1e-4)")
def term_ortho(*, G: nn.Module, **_) -> Tensor:
    from ..nets.layers import orthogonal_penalty
    shared = getattr(G, "shared", None)  # BigGAN leaves its shared class embedding out
    return orthogonal_penalty(G, exclude=list(shared.parameters()) if shared is not None else ())
