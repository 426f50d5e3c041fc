"""Checkpoints tampered with by hand or left by crashed writers, with real files and processes:
a manifest rewritten after damage, metadata that does not parse, a step that disagrees with the
folder's name, symlinks out of the run folder, NaN or wrongly typed weights, and the temporary
folders of writers killed with ``kill -9``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ganforge.checkpoint import (CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint,
                                 save_checkpoint, verify)
from ganforge.cli import main
from ganforge.errors import RunDirError, TrainingDiverged
from ganforge.loop import _rollback, build_state
from ganforge.reporting import NoLog
from ganforge.session import resume

pytestmark = pytest.mark.usefixtures("one_thread")

W = "weights.safetensors"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _reseal(ckpt: Path) -> None:
    """Rewrite the manifest to match the files as they are now (what an attacker or a careless
    tool would do after changing them)."""
    m = json.loads((ckpt / "manifest.json").read_text())
    m["files"] = {n: _sha(ckpt / n) for n in m["files"]}
    (ckpt / "manifest.json").write_text(json.dumps(m))


def _rewrite_weights(ckpt: Path, change=None, meta_change=None) -> None:
    with safe_open(str(ckpt / W), framework="pt") as f:
        meta = dict(f.metadata())
    t = load_file(str(ckpt / W))
    if change:
        t = change(t)
    if meta_change:
        meta = meta_change(meta)
    save_file(t, str(ckpt / W), metadata=meta)
    _reseal(ckpt)


def _two_checkpoints(train_tiny, *extra: str) -> tuple[Path, Path, Path]:
    run = train_tiny("train.steps=4", "train.ckpt_every=2", *extra)
    c2, c4 = list_checkpoints(run / "checkpoints")
    return run, c2, c4


def _truncate_header(ckpt: Path) -> None:
    data = (ckpt / W).read_bytes()
    (ckpt / W).write_bytes(data[:8] + b"{not json" + data[17:])
    _reseal(ckpt)


DAMAGE = {
    "safetensors header": _truncate_header,
    "metadata JSON": lambda c: _rewrite_weights(c, meta_change=lambda m: {**m, "g_args": "{oops"}),
    "non-integer step": lambda c: _rewrite_weights(c, meta_change=lambda m: {**m, "step": '"abc"'}),
    "step of another checkpoint": lambda c: _rewrite_weights(c, meta_change=lambda m: {**m, "step": "7"}),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_resealed_damaged_checkpoint_falls_back_with_a_warning(train_tiny, damage, capsys):
    run, c2, c4 = _two_checkpoints(train_tiny)
    DAMAGE[damage](c4)
    verify(c4)  # the checksums match: only parsing finds the damage
    with pytest.warns(UserWarning, match="ckpt-0000004.*falling back"):
        assert latest_checkpoint(run / "checkpoints") == c2
    with pytest.warns(UserWarning, match="ckpt-0000004"):
        resume(run, ["train.steps=6"], quiet=True)
    assert json.loads((run / "result.json").read_text())["step"] == 6
    # with no good checkpoint left: one clear line, no traceback
    for c in list_checkpoints(run / "checkpoints"):
        DAMAGE[damage](c)
    assert main(["sample", str(run), "--n", "4", "--out", str(run / "s.png")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: no usable checkpoint in" in err


def test_the_manifest_must_cover_every_file(train_tiny):
    run, c2, c4 = _two_checkpoints(train_tiny)
    m = json.loads((c4 / "manifest.json").read_text())
    (c4 / "manifest.json").write_text(json.dumps({**m, "files": {}}))
    with pytest.raises(CheckpointError, match="does not cover state.pt, weights.safetensors"):
        verify(c4)
    (c4 / "manifest.json").write_text(json.dumps({**m, "files": {W: m["files"][W]}}))
    with pytest.raises(CheckpointError, match="does not cover state.pt"):
        verify(c4)
    (c4 / "manifest.json").write_text(json.dumps(m))
    verify(c4)
    (c4 / "extra.bin").write_bytes(b"\0")  # a file the manifest does not vouch for
    with pytest.raises(CheckpointError, match="does not cover extra.bin"):
        verify(c4)
    with pytest.warns(UserWarning, match="does not cover extra.bin"):
        assert latest_checkpoint(run / "checkpoints") == c2


def test_a_checkpoint_under_another_steps_name_is_refused(train_tiny):
    run, c2, c4 = _two_checkpoints(train_tiny)
    shutil.copytree(c2, run / "checkpoints" / "ckpt-0000010")  # content of step 2, named step 10
    with pytest.warns(UserWarning, match="ckpt-0000010: the manifest is for step 2, the folder name says 10"):
        assert latest_checkpoint(run / "checkpoints") == c4


def test_a_symlink_out_of_the_run_folder_is_refused_and_never_left_dangling(train_tiny, tmp_path):
    run, c2, c4 = _two_checkpoints(train_tiny)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(c2, elsewhere / "ckpt-0000010")
    link = run / "checkpoints" / "ckpt-0000010"
    link.symlink_to(elsewhere / "ckpt-0000010")
    with pytest.warns(UserWarning, match="symlink .* outside"):
        assert latest_checkpoint(run / "checkpoints") == c4
    # a run saving its step 4 over a symlinked ckpt-0000004 replaces the link, not the target's files
    c4_target = elsewhere / "ckpt-0000004"
    shutil.move(str(c4), str(c4_target))
    c4.symlink_to(c4_target)
    nets, state, meta = load_checkpoint(c4_target)
    save_checkpoint(run / "checkpoints", 4, nets, state, metadata=meta, keep=1)
    assert not c4.is_symlink() and load_checkpoint(c4)[2]["step"] == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-0000004", "ckpt-0000010"]
    assert (c4_target / W).is_file()  # the link's target is never deleted
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def _poison(name: str):
    def change(t):
        if name == "nan":
            return {k: torch.full_like(v, float("nan")) if k.startswith("G.") and v.is_floating_point() else v
                    for k, v in t.items()}
        dtype = {"int32": torch.int32, "fp16": torch.float16}[name]
        return {k: v.to(dtype) if k.startswith("G.") and v.is_floating_point() else v for k, v in t.items()}
    return change


def test_nan_weights_are_refused_by_every_command_and_never_rolled_back_to(train_tiny, make_cfg, capsys, tmp_path):
    run, c2, c4 = _two_checkpoints(train_tiny)
    _rewrite_weights(c4, _poison("nan"))
    for cmd in (["sample", str(run), "--checkpoint", "4", "--out", str(tmp_path / "s.png")],
                ["eval", str(run), "--checkpoint", "4", "--n", "32", "--out", str(tmp_path / "e.json")],
                ["export", str(run), "--checkpoint", "4", "--out", str(tmp_path / "g.pt")]):
        assert main(cmd) == 2, cmd
        err = capsys.readouterr().err
        assert err.strip() == f"error: {c4}: G.net.0.bias holds NaN/Inf; these weights are unusable", cmd
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written
    # the default (newest) checkpoint falls back past it, with a warning; a rollback never picks it
    with pytest.warns(UserWarning, match="NaN/Inf"):
        assert main(["sample", str(run), "--out", str(tmp_path / "s.png")]) == 0
    assert "step 2" in capsys.readouterr().out
    state = build_state(make_cfg("train.steps=4", "train.ckpt_every=2"))
    with pytest.warns(UserWarning, match="NaN/Inf"):
        _rollback(state, run, TrainingDiverged("loss/D became NaN/Inf by step 5"), NoLog())
    assert state.step == 2 and state.lr_scale.rollbacks == 1
    _rewrite_weights(c2, _poison("nan"))  # none left: a clear error
    with pytest.warns(UserWarning), pytest.raises(TrainingDiverged, match="no good checkpoint"):
        _rollback(state, run, TrainingDiverged("loss/D became NaN/Inf by step 5"), NoLog())
    with pytest.warns(UserWarning), pytest.raises(RunDirError, match="no usable checkpoint.*NaN/Inf"):
        resume(run, ["train.steps=6"], quiet=True)


@pytest.mark.parametrize("dtype", ["int32", "fp16"])
def test_weights_of_the_wrong_dtype_are_an_error_not_a_silent_cast(train_tiny, capsys, dtype, tmp_path):
    run, c2, c4 = _two_checkpoints(train_tiny, "train.ema=0")  # no EMA: sample reads the poisoned G
    _rewrite_weights(c4, _poison(dtype))
    name = {"int32": "int32", "fp16": "float16"}[dtype]
    assert main(["sample", str(run), "--out", str(tmp_path / "s.png")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {c4}: net.0.weight is {name} where the model has float32; "
                                               f"convert the weights explicitly")
    with pytest.raises(CheckpointError, match=f"G\\): net.0.weight is {name} where the model has float32"):
        resume(run, ["train.steps=6"], quiet=True)


# -- writers killed mid-save ----------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, torch
    from ganforge.checkpoint import save_checkpoint
    nets = {"G": {"w": torch.randn(2_000_000)}}  # 8 MB: each save takes a while
    print("ready", flush=True)
    step = 1
    while True:
        save_checkpoint(sys.argv[1], step, nets, {"step": step}, keep=1)
        step += 1
""")


def _kill_mid_save(root: Path) -> int:
    """Start a writer that saves checkpoints in a loop and kill -9 it while a temporary folder
    exists; returns its (now dead) process id."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        deadline = time.time() + 30
        while time.time() < deadline and not any(p.name.startswith(".tmp-") for p in root.glob(".*")):
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if any(p.name.startswith(".tmp-") for p in root.glob(".*")):
            return proc.pid
    pytest.fail("never caught the writer mid-save")


def test_temporary_folders_of_killed_writers_go_at_the_next_save(tmp_path):
    root = tmp_path / "checkpoints"
    dead = _kill_mid_save(root)
    stale = [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    assert len(stale) == 1 and stale[0].name.endswith(f"-{dead}")
    alive = root / ".tmp-ckpt-0000099-1"  # pid 1 is running: another writer's folder is left alone
    alive.mkdir()
    save_checkpoint(root, 100, {"G": {"w": torch.zeros(3)}}, {"step": 100}, keep=1)
    assert sorted(p.name for p in root.iterdir()) == [".tmp-ckpt-0000099-1", "ckpt-0000100"]


def test_temporary_folders_and_files_of_killed_writers_go_at_resume(train_tiny, tmp_path):
    run, c2, c4 = _two_checkpoints(train_tiny)
    dead = _kill_mid_save(tmp_path / "other")
    shutil.copytree(c4, run / "checkpoints" / f".tmp-ckpt-0000006-{dead}")
    (run / f".metrics.jsonl.tmp-{dead}.jsonl").write_text('{"step": 1')
    (run / "samples").mkdir(exist_ok=True)
    (run / "samples" / f".step-0000006.png.tmp-{dead}.png").write_bytes(b"\x89PNG")
    resume(run, ["train.steps=6"], quiet=True)
    leftovers = [p for p in run.rglob(".*") if ".tmp" in p.name]
    assert leftovers == []
    assert latest_checkpoint(run / "checkpoints").name == "ckpt-0000006"
