"""Bad input never becomes a stack trace or lost work: arbitrary bytes as images, a full disk."""

from __future__ import annotations

import errno
import io
import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import ganforge.checkpoint as ckpt_mod
from ganforge.checkpoint import latest_checkpoint, list_checkpoints
from ganforge.config import resolve
from ganforge.data import DataError
from ganforge.data.folders import folder_source
from ganforge.rundir import RunDirError
from ganforge.session import train


def _png_bytes(size=(9, 7), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format="PNG")
    return buf.getvalue()


GOOD = _png_bytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=400), cut=st.integers(0, len(GOOD)), name=st.sampled_from(["a.png", "b.jpg", "c.gif"]))
def test_folder_loader_survives_arbitrary_bytes(tmp_path_factory, junk, cut, name):
    """Random bytes, and a valid PNG cut anywhere, are either decoded or counted as skipped."""
    folder = tmp_path_factory.mktemp("imgs")
    (folder / "good.png").write_bytes(GOOD)
    (folder / name).write_bytes(junk)
    (folder / f"cut-{name}").write_bytes(GOOD[:cut])
    cfg = resolve("dcgan", overrides=["data.image_size=8", "data.channels=1"])
    src = folder_source(cfg, str(folder))
    assert 1 <= len(src) <= 3
    assert len(src) + len(src.skipped) == 3
    x, _ = src.next(2)
    assert x.shape == (2, 1, 8, 8) and x.min() >= -1 and x.max() <= 1


def test_folder_of_only_junk_is_a_data_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not an image")
    (tmp_path / "y.jpg").write_bytes(b"")
    cfg = resolve("dcgan", overrides=["data.image_size=8"])
    with pytest.raises(DataError):
        folder_source(cfg, str(tmp_path))


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_costs_one_checkpoint_not_the_run(make_cfg, monkeypatch, capsys):
    cfg = make_cfg("train.steps=6", "train.ckpt_every=2")
    real_save = ckpt_mod.save_file
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # the second periodic checkpoint (step 4) hits a full disk
        calls["n"] += 1
        if calls["n"] == 2:
            _disk_full()
        return real_save(*args, **kwargs)

    monkeypatch.setattr(ckpt_mod, "save_file", flaky)
    run = train(cfg, quiet=True)
    assert "checkpoint at step 4 not written" in capsys.readouterr().err
    steps = [int(p.name.split("-")[1]) for p in list_checkpoints(run / "checkpoints")]
    assert steps == [2, 6]  # step 2 survived; the run went on and saved its final checkpoint
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp")]  # no debris
    assert json.loads((run / "result.json").read_text())["step"] == 6


def test_full_disk_at_the_end_keeps_the_last_checkpoint_and_says_how_to_resume(make_cfg, monkeypatch):
    cfg = make_cfg("train.steps=4", "train.ckpt_every=2")
    real_save = ckpt_mod.save_file
    calls = {"n": 0}

    def full_after_first(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            _disk_full()
        return real_save(*args, **kwargs)

    monkeypatch.setattr(ckpt_mod, "save_file", full_after_first)
    with pytest.raises(RunDirError, match="resume"):
        train(cfg, quiet=True)
    (run,) = Path(cfg.out).iterdir()
    last = latest_checkpoint(run / "checkpoints")
    assert last is not None and last.name.endswith("0000002")  # the previous checkpoint is intact
    assert torch.load(last / "state.pt", weights_only=True)["step"] == 2
