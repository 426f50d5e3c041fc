"""ganforge: Generative Adversarial Networks in one clean, tested package."""

__version__ = "0.1.0"


def train(config="dcgan", overrides=(), **kwargs):
    """Train a GAN and return its run folder.

    ``config`` is a :class:`ganforge.config.Config`, a preset name, or a path to a YAML file;
    ``overrides`` are ``"a.b=c"`` strings applied on top.
    """
    from pathlib import Path

    from .config import Config, apply_override, resolve, validate
    from .train import train as _train
    if isinstance(config, Config):
        for o in overrides:
            apply_override(config, o)
        cfg = validate(config)
    elif isinstance(config, (str, Path)) and str(config).endswith((".yaml", ".yml")):
        cfg = resolve(file=config, overrides=overrides)
    else:
        cfg = resolve(str(config), overrides=overrides)
    return _train(cfg, **kwargs)


def load(run_dir, checkpoint=None, *, ema=None, device="cpu"):
    """The generator of a run, ready to ``.sample(n, seed=...)``."""
    from .api import load as _load
    return _load(run_dir, checkpoint=checkpoint, ema=ema, device=device)


__all__ = ["train", "load", "__version__"]
