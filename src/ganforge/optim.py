"""Optimizers by name, with separate learning rates for G and D."""

from __future__ import annotations

import torch

from .registry import Registry

OPTIMIZERS = Registry("optimizer", check=callable)


@OPTIMIZERS.register("adam", help="Adam (Kingma & Ba 2015) with betas from optim.betas")
def _adam(params, lr: float, cfg) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("rmsprop", help="RMSprop, as in WGAN (Arjovsky et al. 2017)")
def _rmsprop(params, lr: float, cfg) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("sgd", help="stochastic gradient descent with optional momentum")
def _sgd(params, lr: float, cfg) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def build_optimizers(cfg, G, D):
    make = OPTIMIZERS.get(cfg.optim.name)
    return make(G.parameters(), cfg.optim.lr_g, cfg.optim), make(D.parameters(), cfg.optim.lr_d, cfg.optim)
