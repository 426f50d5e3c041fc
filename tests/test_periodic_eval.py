"""Periodic evaluation keeps the best checkpoint, and remembers the best value across a resume."""

from __future__ import annotations

import pytest

from ganforge.checkpoint import list_checkpoints, load_checkpoint
from ganforge.evaluation import METRICS
from ganforge.evaluation.registry import Metric
from ganforge.rundir import read_metrics
from ganforge.session import resume, train


class Scripted(Metric):
    """Returns the next value of a script at each evaluation (lower is better)."""

    def __init__(self, values):
        self.values = list(values)
        self.name = "scripted"

    def compute(self, ctx):
        return {"score": self.values.pop(0)}


@pytest.fixture
def scripted(monkeypatch):
    def register(values):
        m = Scripted(values)
        monkeypatch.setitem(METRICS._items, "scripted", m)
        return m
    return register


EVAL = ("eval.every=2", "eval.metrics=scripted", "eval.best=score", "eval.ref=fashion-mnist:test", "eval.n=8",
        "train.ckpt_every=2")


def _best_step(run):
    (best,) = list_checkpoints(run / "checkpoints" / "best")
    return load_checkpoint(best)[1]["step"]


def test_best_checkpoint_follows_the_lowest_value(make_cfg, scripted):
    scripted([3.0, 1.0, 2.0])
    run = train(make_cfg(*EVAL, "train.steps=6"), quiet=True)
    assert [r["eval/score"] for r in read_metrics(run) if "eval/score" in r] == [3.0, 1.0, 2.0]
    assert _best_step(run) == 4


def test_a_resumed_run_remembers_its_best_value(make_cfg, scripted):
    scripted([1.0, 2.0])
    run = train(make_cfg(*EVAL, "train.steps=4"), quiet=True)
    assert _best_step(run) == 2
    scripted([5.0])  # worse than the best before the resume: the best checkpoint must stay
    resume(run, ["train.steps=6"], quiet=True)
    assert [r["eval/score"] for r in read_metrics(run) if "eval/score" in r] == [1.0, 2.0, 5.0]
    assert _best_step(run) == 2
    scripted([0.5])  # better: replaced
    resume(run, ["train.steps=8"], quiet=True)
    assert _best_step(run) == 8
