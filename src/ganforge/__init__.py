"""ganforge: Generative Adversarial Networks in one clean, tested package."""

from ._version import __version__


def train(config="dcgan", overrides=(), **kwargs):
    """Train a GAN and return its run folder.

    ``config`` is a :class:`ganforge.config.Config`, a preset name, or a path to a YAML file;
    ``overrides`` are ``"a.b=c"`` strings applied on top. Ctrl-C (or SIGTERM) writes a final
    checkpoint and then raises :class:`ganforge.session.TrainingInterrupted` (a KeyboardInterrupt).
    """
    from pathlib import Path

    from .config import Config, apply_override, resolve
    from .session import train as _train
    if isinstance(config, Config):
        for o in overrides:
            apply_override(config, o)
        cfg = config
    elif isinstance(config, (str, Path)) and str(config).endswith((".yaml", ".yml")):
        cfg = resolve(file=config, overrides=overrides)
    else:
        cfg = resolve(str(config), overrides=overrides)
    return _train(cfg, **kwargs)


def load(run_dir, checkpoint=None, *, ema=None, device="cpu"):
    """The generator of a run (:class:`ganforge.trained.TrainedGenerator`) of a run folder, a model folder or
    ``hf://user/name``, ready to ``.sample(n, seed=...)`` or ``.translate(images)``."""
    from .loading import load as _load
    return _load(run_dir, checkpoint=checkpoint, ema=ema, device=device)


__all__ = ["train", "load", "__version__"]
