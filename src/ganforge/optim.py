"""Optimizers by name, with separate learning rates for G and D."""

from __future__ import annotations

import math

import torch

from .registry import Registry

OPTIMIZERS = Registry("optimizer", check=callable)


def optimizer_kernel(params: list, fused: bool = False) -> dict:
    """torch's multi-tensor update for parameters on a CPU or CUDA device: Adam's ``fused`` kernel
    (one pass over all tensors: about 4x faster than the per-tensor loop torch uses on a CPU for a
    StyleGAN2 pair) or ``foreach``; {} (torch's choice) on other devices. The update is the same
    algorithm; only the rounding of its floating-point operations may differ."""
    if not params or any(p.device.type not in ("cpu", "cuda") or not p.is_floating_point() for p in params):
        return {}
    return {"fused": True} if fused else {"foreach": True}


@OPTIMIZERS.register("adam", help="Adam (Kingma & Ba 2015) with betas from optim.betas")
def _adam(params, lr: float, cfg) -> torch.optim.Optimizer:
    params = list(params)
    return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                            **optimizer_kernel(params, fused=True))


@OPTIMIZERS.register("rmsprop", help="RMSprop, as in WGAN (Arjovsky et al. 2017)")
def _rmsprop(params, lr: float, cfg) -> torch.optim.Optimizer:
    params = list(params)
    return torch.optim.RMSprop(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               **optimizer_kernel(params))


@OPTIMIZERS.register("sgd", help="stochastic gradient descent with optional momentum")
def _sgd(params, lr: float, cfg) -> torch.optim.Optimizer:
    params = list(params)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           **optimizer_kernel(params))


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict) -> None:
    """``opt.load_state_dict(state)`` keeping ``opt``'s update kernel (``fused`` / ``foreach``): a
    checkpoint written on one device resumes with the kernel this device has."""
    kernel = [{k: g.get(k) for k in ("fused", "foreach")} for g in opt.param_groups]
    opt.load_state_dict(state)
    for group, kern in zip(opt.param_groups, kernel):
        group.update(kern)


def build_optimizers(cfg, G, D):
    make = OPTIMIZERS.get(cfg.optim.name)
    return make(G.parameters(), cfg.optim.lr_g, cfg.optim), make(D.parameters(), cfg.optim.lr_d, cfg.optim)


from .config.ranges import SCHEDULES  # noqa: E402,F401


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


class LRScale:
    """A factor on both learning rates that the divergence guard lowers at each rollback.

    The schedulers' lambdas read it, so the schedule and the scale compose; it is part of the
    run's checkpointed state (with the rollback count), so a resumed run keeps the lowered rates.
    """

    def __init__(self, value: float = 1.0, rollbacks: int = 0):
        self.value = float(value)
        self.rollbacks = int(rollbacks)

    def state_dict(self) -> dict:
        return {"value": self.value, "rollbacks": self.rollbacks}

    def load_state_dict(self, state: dict) -> None:
        self.value, self.rollbacks = float(state["value"]), int(state["rollbacks"])


def build_schedulers(cfg, opt_g, opt_d, scale: LRScale | None = None):
    """LambdaLR schedulers stepped once per generator step (their state is checkpointed); the
    rates are ``base * scale.value * schedule(step)``."""
    scale = scale or LRScale()

    def fn(step: int) -> float:
        return scale.value * lr_factor(cfg.optim.schedule, step, cfg.train.steps, cfg.optim.decay_start)
    return (torch.optim.lr_scheduler.LambdaLR(opt_g, fn), torch.optim.lr_scheduler.LambdaLR(opt_d, fn))


def refresh_lr(sched: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Set the optimizer's rates to what the scheduler gives now (after the scale changed)."""
    for group, base, fn in zip(sched.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas):
        group["lr"] = base * fn(sched.last_epoch)


def validate_config(cfg) -> None:
    """The optim section's optimizer name (rates, betas and schedule are checked with the schema)."""
    OPTIMIZERS.check("optim.name", cfg.optim.name)
