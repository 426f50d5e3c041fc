"""Evaluation: registered metrics computed from one shared context per evaluation.

:func:`evaluate` runs any loaded model (:class:`ganforge.trained.TrainedGenerator`) through the
metrics asked for (its task's defaults otherwise) and returns the results with their provenance
(extractor and its SHA-256, n, reference, seed, checkpoint step, package versions). The metric
maths lives apart, in :mod:`ganforge.metrics`; reference sets are the registered datasets with a
held-out split (:func:`ganforge.data.references`).
"""

from __future__ import annotations

import time

# importing the metric modules registers their metrics
from . import (class_metrics, feature_metrics, multidomain_metrics, pair_metrics, ppl_metric,  # noqa: F401
               sequence_metrics, ssl_metrics)
from .context import EvalContext, cache_dir, environment, reference_features
from .registry import METRICS, Metric, capabilities, parse_metrics, register_metric, validate_config


def evaluate(model, *, metrics: str | None = None, n: int = 10000, seed: int = 0, ref: str | None = None,
             features: str = "fmnist", device="cpu", extractor=None, progress: bool | None = None,
             ref_n: int = 0) -> dict:
    """``{"results", "provenance", "seconds"}`` for a loaded model; ``ref_n`` > 0 keeps only the first
    ``ref_n`` reference images (the protocol uses the whole split)."""
    chosen = parse_metrics(metrics or model.task.metrics_for(model), model)
    ctx = EvalContext(model, n=n, seed=seed, ref=ref, features=features, extractor=extractor, device=device,
                      progress=progress, ref_n=ref_n)
    results, seconds = {}, {}
    for m in chosen:
        t0 = time.perf_counter()
        results.update(m.compute(ctx))
        seconds[m.name] = time.perf_counter() - t0
    prov = {**ctx.provenance(), "metrics": [m.name for m in chosen], "checkpoint": str(model.checkpoint),
            "step": model.step, "ema": model.ema}
    return {"results": results, "provenance": prov, "seconds": seconds}


def evaluate_run(run_dir, *, checkpoint=None, ema=None, device="cpu", **kwargs) -> dict:
    """:func:`evaluate` on a run folder's generator (the newest checkpoint by default)."""
    from ..loading import load
    model = load(run_dir, checkpoint, ema=ema, device=device)
    out = evaluate(model, device=device, **kwargs)
    out["provenance"]["run"] = str(run_dir)
    return out


def format_table(results: dict) -> str:
    width = max(map(len, results)) if results else 0
    return "\n".join(f"{k:<{width}}  {v:.6g}" for k, v in results.items())


__all__ = ["METRICS", "EvalContext", "Metric", "cache_dir", "capabilities", "environment", "evaluate",
           "evaluate_run", "format_table", "parse_metrics", "reference_features", "register_metric",
           "validate_config"]
