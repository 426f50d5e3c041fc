"""Stopping a run from outside: SIGTERM / Ctrl-C checkpoint and stop; kill -9 loses only the steps
since the last checkpoint; either way resume ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ganforge.checkpoint import latest_checkpoint, load_weights

from conftest import TINY_TOY

STEPS = 300
OVERRIDES = list(TINY_TOY) + [f"train.steps={STEPS}", "train.deterministic=true", "train.log_every=5",
                              "train.ckpt_every=50", "train.ema=0.9", "seed=3"]


def _train_cmd(out: Path, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "ganforge", "train", "vanilla", "--set", f"out={out}"]
    for o in OVERRIDES + list(extra):
        args += ["--set", o]
    return args


def _final_weights(run: Path) -> dict:
    nets, _ = load_weights(latest_checkpoint(run / "checkpoints"))
    return nets


def _wait_for_step(run_parent: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "training ended before the signal could be sent"
        for log in run_parent.glob("*/metrics.jsonl"):
            lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
            if lines and lines[-1]["step"] >= step:
                return log.parent
        time.sleep(0.05)
    raise AssertionError(f"no step {step} within {timeout} s")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ref")
    subprocess.run(_train_cmd(out), check=True, capture_output=True, timeout=300)
    (run,) = out.iterdir()
    return _final_weights(run)


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for net in a:
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_checkpoints_and_resume_is_exact(tmp_path, reference, sig):
    proc = subprocess.Popen(_train_cmd(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = _wait_for_step(tmp_path, 60, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # an interrupt is not a success, even after a clean checkpoint
    assert "interrupted" in out and f"ganforge train --resume {run}" in err
    stopped = json.loads((run / "result.json").read_text())
    assert stopped["reason"] == "interrupted" and 60 <= stopped["step"] < STEPS
    # the final checkpoint is at the step where it stopped, not at the last periodic one
    assert int(latest_checkpoint(run / "checkpoints").name.split("-")[1]) == stopped["step"]
    subprocess.run([sys.executable, "-m", "ganforge", "train", "--resume", str(run)], check=True,
                   capture_output=True, timeout=300)
    assert json.loads((run / "result.json").read_text())["step"] == STEPS
    _assert_same(_final_weights(run), reference)


def test_kill_9_loses_only_steps_since_the_last_checkpoint(tmp_path, reference):
    proc = subprocess.Popen(_train_cmd(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = _wait_for_step(tmp_path, 120, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    last = latest_checkpoint(run / "checkpoints")
    saved = int(last.name.split("-")[1])
    assert saved >= 100 and saved % 50 == 0  # at most ckpt_every steps lost
    res = subprocess.run([sys.executable, "-m", "ganforge", "train", "--resume", str(run)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"step {saved}" in res.stdout
    _assert_same(_final_weights(run), reference)


def test_the_python_api_reraises_keyboard_interrupt_after_checkpointing(make_cfg, monkeypatch):
    """ganforge.train() must not return normally after Ctrl-C: a script would go on as if training
    had finished. A real SIGINT is sent to this process during step 3."""
    import os

    import ganforge
    import ganforge.loop as loop
    from ganforge.session import TrainingInterrupted
    step = loop.train_step

    def interrupting_step(state, report):
        step(state, report)
        if state.step == 3:
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(loop, "train_step", interrupting_step)
    with pytest.raises(KeyboardInterrupt) as info:
        ganforge.train(make_cfg("train.steps=50"), quiet=True)
    assert isinstance(info.value, TrainingInterrupted) and info.value.step == 3
    assert "--resume" in str(info.value)
    run = info.value.run_dir
    assert json.loads((run / "result.json").read_text())["reason"] == "interrupted"
    assert int(latest_checkpoint(run / "checkpoints").name.split("-")[1]) == 3
