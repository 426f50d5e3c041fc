"""Full validation of a config: its values, then each section by the subsystem that owns it.

:func:`ganforge.config.resolve` checks types and ranges only (the config package imports no
subsystem); here every registered component checks its own section: the dataset registry
``data``, the net families ``model``, the task the run serves (and its loss terms), the losses and
penalties ``loss``, DiffAugment ``augment``, the optimizers ``optim``, and the metrics ``eval``.
"""

from __future__ import annotations

from . import augment, data, losses, nets, optim, regularizers, tasks
from .config import Config, check_values
from .evaluation import registry as metrics


def validate(cfg: Config) -> Config:
    """Raise ConfigError on the first problem; return ``cfg`` unchanged when it is valid."""
    check_values(cfg)
    data.validate_config(cfg)
    nets.validate_config(cfg)
    tasks.validate_config(cfg)
    terms = tasks.loss_terms(cfg)
    for name in cfg.loss.terms:
        if name not in terms:
            from .config import choice
            choice("loss.terms", name, terms)
    losses.validate_config(cfg)
    regularizers.validate_config(cfg)
    augment.validate_config(cfg)
    optim.validate_config(cfg)
    metrics.validate_config(cfg)
    return cfg


__all__ = ["validate"]
