"""Evaluation during training (``eval.every``): metrics into metrics.jsonl, and the best
checkpoint by ``eval.best`` kept in ``checkpoints/best/``. The best value so far is part of the
run's checkpointed state, so a resumed run does not forget it."""

from __future__ import annotations

import math
from pathlib import Path

from ..atomic import write_or_warn
from ..checkpoint import save_run
from ..rundir import CHECKPOINTS


class BestMetric:
    """The best (lowest) value of ``eval.best`` seen so far, checkpointed with the run."""

    def __init__(self):
        self.value = math.inf

    def update(self, value: float) -> bool:
        """Record ``value``; True when it is a new best."""
        if value < self.value:
            self.value = float(value)
            return True
        return False

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class PeriodicEval:
    """Called by the loop every ``eval.every`` steps in the main process."""

    def __init__(self, state, run_dir: Path):
        self.cfg = state.cfg.eval
        self.run_dir = Path(run_dir)
        self.extractor = None

    def __call__(self, state, log) -> dict:
        from ..features import get_feature_extractor
        from ..trained import TrainedGenerator
        from . import evaluate
        e = self.cfg
        if self.extractor is None:
            self.extractor = get_feature_extractor(e.features, device=state.device)
        net = state.sampler_net
        was_training = net.training
        try:
            model = TrainedGenerator(net, state.cfg, args=state.g_args, step=state.step, ema=state.G_ema is not None,
                                     device=state.device, num_classes=state.data.num_classes,
                                     discriminator=state.D)
            out = evaluate(model, metrics=e.metrics, n=e.n, ref=e.ref or None, extractor=self.extractor,
                           progress=False)
        finally:
            net.train(was_training)
        res = out["results"]
        log.write(state.step, {f"eval/{k}": v for k, v in res.items()})
        if e.best and e.best in res and state.best.update(res[e.best]):
            best = f"{CHECKPOINTS}/best"
            write_or_warn("best checkpoint", lambda: save_run(state, self.run_dir, folder=best, keep=1),
                          self.run_dir, state.step)
        return res


__all__ = ["BestMetric", "PeriodicEval"]
