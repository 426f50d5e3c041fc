"""The metric registry: every metric `ganforge eval` and periodic evaluation can compute.

A metric is a :class:`Metric` subclass registered with ``@register_metric("name")``: its
``compute(ctx)`` reads what it needs from an :class:`~.context.EvalContext` (outputs, features,
the reference, the model) and returns ``{result key: float}``. ``needs`` names the capabilities it
requires of the model's task (``images``, ``latent``, ``two_way``, ``classes``, ``modes``, and what
the task offers: ``pairs``, ``sequences``, ``classifier``, ``domains``; and ``content``); a metric
that does not apply says why in one line. The CLI's metric list, ``eval --help`` and config
validation all read this registry.
"""

from __future__ import annotations

from ..errors import ConfigError, EvalError
from ..registry import Registry, did_you_mean


class Metric:
    name = ""  # the registry key, set at registration
    help = ""
    needs: tuple[str, ...] = ()  # capabilities of the model it needs (see capabilities())

    def compute(self, ctx) -> dict[str, float]:
        raise NotImplementedError


METRICS = Registry("metric", check=lambda o: isinstance(o, Metric))


def register_metric(name: str):
    """Class decorator: register one instance of a :class:`Metric` subclass under ``name``."""
    def deco(cls):
        m = cls()
        m.name = name
        METRICS.register(name, help=m.help or (cls.__doc__ or "").strip().splitlines()[0])(m)
        return cls
    return deco


def capabilities(model) -> set[str]:
    """What a loaded model offers metrics: image outputs, a latent space (noise-to-sample models),
    aligned test pairs, a way back, classes, a mode counter for its dataset."""
    from ..data import dataset
    task = model.task
    caps = set()
    if len(model.data_shape) == 3:
        caps.add("images")
    if not task.takes_images:
        caps.add("latent")
    if task.two_way:
        caps.add("two_way")
    if model.conditional:
        caps.add("classes")
    entry = dataset(model.cfg.data.name)
    if entry.modes is not None:
        caps.add("modes")
    if entry.canonical is not None:
        caps.add("content")
    return caps | set(task.offers)


WHY = {"images": "image samples (not vectors)", "latent": "a noise-to-sample model (with a latent space)",
       "pairs": "a paired image-to-image model",
       "two_way": "a two-way (CycleGAN) model", "classes": "a class-conditional model (model.conditional=true)",
       "modes": "a run on a dataset with known modes (ring8, grid25, gauss1d, stacked-fmnist)",
       "sequences": "a time-series model (model.arch=sequence)",
       "classifier": "a semi-supervised model, whose D classifies (model.arch=sgan)",
       "domains": "a multi-domain translation model (model.arch=stargan)",
       "content": "a multi-domain model trained on data whose content is known (fmnist-domains)"}


def parse_metrics(spec, model=None) -> list[Metric]:
    """``"fid,kid"`` -> metric objects (in order, without repeats); with a ``model``, each must apply."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[Metric] = []
    for n in (s.strip() for s in names if s.strip()):
        if n not in METRICS:
            raise EvalError(f"unknown metric '{n}'{did_you_mean(n, METRICS.keys())}; "
                            f"choose from: {', '.join(METRICS.keys())}")
        m = METRICS.get(n)
        if model is not None:
            missing = [c for c in m.needs if c not in capabilities(model)]
            if missing:
                raise EvalError(f"metric '{n}' needs {WHY[missing[0]]}")
        if m not in out:
            out.append(m)
    if not out:
        raise EvalError("no metrics requested")
    return out


def validate_config(cfg) -> None:
    """The eval section: metric names, the best-checkpoint key's metric, the feature extractor."""
    if not cfg.eval.every:
        return
    try:
        parse_metrics(cfg.eval.metrics)
    except EvalError as err:
        raise ConfigError(f"eval.metrics: {err}") from None
    from ..features import FEATURES
    FEATURES.check("eval.features", cfg.eval.features)


__all__ = ["METRICS", "Metric", "capabilities", "parse_metrics", "register_metric", "validate_config"]
