"""Fine-tuning through training: train.init starts a new run from another run's weights,
train.freeze_d keeps D's first blocks fixed (FreezeD), and a resume restores, never re-inits."""

from __future__ import annotations

import pytest
import torch

from ganforge.checkpoint import latest_checkpoint, load_checkpoint
from ganforge.errors import CheckpointError
from ganforge.session import resume, train


def _nets(run):
    nets, _, _ = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    return nets


def test_init_starts_from_the_source_and_freeze_d_keeps_blocks(make_cfg):
    src = train(make_cfg("train.steps=3"), quiet=True)
    cfg = make_cfg(f"train.init={src}", "train.init_what=gd", "train.freeze_d=1")
    from ganforge.loop import build_state
    state = build_state(cfg)
    start = _nets(src)
    for k, v in state.G.state_dict().items():  # G and D begin as the source's weights
        assert torch.equal(v, start["G"][k]), k
    for k, v in state.D.state_dict().items():
        assert torch.equal(v, start["D"][k]), k
    run = train(make_cfg(f"train.init={src}", "train.init_what=gd", "train.freeze_d=1", "train.steps=3"), quiet=True)
    end = _nets(run)["D"]
    first = [k for k in end if k.startswith("net.1.")]  # the MLP D's first linear layer (block 0)
    assert first and all(torch.equal(end[k], start["D"][k]) for k in first)  # frozen
    assert any(not torch.equal(end[k], start["D"][k]) for k in end if k not in first)  # the rest trained
    resume(run, ["train.steps=5"], quiet=True)  # restores its own checkpoint; the first block stays frozen
    again = _nets(run)["D"]
    assert all(torch.equal(again[k], start["D"][k]) for k in first)


def test_init_from_a_mismatching_model_is_one_line(make_cfg):
    src = train(make_cfg("train.steps=2", "model.g.hidden=8"), quiet=True)
    with pytest.raises(CheckpointError, match="shape"):
        train(make_cfg(f"train.init={src}", "train.steps=2"), quiet=True)
