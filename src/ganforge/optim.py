"""Optimizers by name, with separate learning rates for G and D."""

from __future__ import annotations

import math

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


SCHEDULES = ("constant", "linear", "cosine")


def lr_factor(schedule: str, step: int, total: int, decay_start: float = 0.0) -> float:
    """Multiplier of the base learning rate at generator step ``step`` of ``total``."""
    start = int(decay_start * total)
    if schedule == "constant" or step < start:
        return 1.0
    frac = min(1.0, (step - start) / max(1, total - start))
    if schedule == "linear":
        return 1.0 - frac
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown schedule '{schedule}'; choose from {', '.join(SCHEDULES)}")


def build_schedulers(cfg, opt_g, opt_d):
    """LambdaLR schedulers stepped once per generator step (their state is checkpointed)."""
    fn = lambda step: lr_factor(cfg.optim.schedule, step, cfg.train.steps, cfg.optim.decay_start)  # noqa: E731
    return (torch.optim.lr_scheduler.LambdaLR(opt_g, fn), torch.optim.lr_scheduler.LambdaLR(opt_d, fn))
