"""Sample pictures of a run: made from the same fixed inputs at every step, so a run's pictures
show its progress. What the inputs are and how a picture is laid out is up to the run's task."""

from __future__ import annotations

from pathlib import Path

import torch

from .rundir import SAMPLES

PREVIEW_SEED_OFFSET = 12345  # the fixed inputs are drawn with cfg.seed + this


def fixed_inputs(state) -> dict:
    """The inputs of every sample picture of a run."""
    return state.task.fixed_inputs(state.data, state.cfg, seed=state.cfg.seed + PREVIEW_SEED_OFFSET)


@torch.no_grad()
def write_samples(state, run_dir: Path, fixed: dict, name: str) -> Path:
    """``run_dir/samples/<name>.png`` from the sampling generator (the EMA copy when kept)."""
    net = state.sampler_net
    was_training = net.training
    net.eval()
    try:
        x, nrow, real = state.task.preview(net, fixed, state.device)
    finally:
        net.train(was_training)
    path = Path(run_dir) / SAMPLES / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    state.task.save_samples(x.cpu(), path, real, nrow=nrow)
    return path


__all__ = ["fixed_inputs", "write_samples"]
