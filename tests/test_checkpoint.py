"""Checkpoints: atomic, checksummed, pruned, damage-tolerant, safe to load, bound to their model."""

from __future__ import annotations

import hashlib
import json
import os
import warnings

import pytest
import torch

from ganforge.checkpoint import (CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint,
                                 load_weights, save_checkpoint, verify)
from ganforge.rundir import RunDirError
from ganforge.loop import build_state
from ganforge.checkpoint import restore_run as restore
from ganforge.session import resume

pytestmark = pytest.mark.usefixtures("one_thread")

FILES = ("weights.safetensors", "state.pt")


def _nets(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"G": {"w": torch.randn(4, 3, generator=g), "b": torch.zeros(4)},
            "D": {"w": torch.randn(2, 2, generator=g), "n": torch.tensor(7)}}


def _state(step: int) -> dict:
    return {"step": step, "opt": {"lr": 0.1, "m": torch.ones(3)}, "rng": torch.get_rng_state()}


def _save(root, step, keep=3, seed=None):
    return save_checkpoint(root, step, _nets(step if seed is None else seed), _state(step), keep=keep,
                           metadata={"step": step, "g_args": {"hidden": 16, "out_shape": [2]}})


def _flip_byte(path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_save_writes_files_and_a_sha256_manifest(tmp_path):
    root = tmp_path / "checkpoints"
    path = _save(root, 12)
    assert path == root / "ckpt-0000012"
    assert sorted(p.name for p in path.iterdir()) == sorted([*FILES, "manifest.json"])
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["step"] == 12
    assert set(manifest["files"]) == set(FILES)
    for name in FILES:
        assert manifest["files"][name] == hashlib.sha256((path / name).read_bytes()).hexdigest()
    assert [p.name for p in root.iterdir()] == ["ckpt-0000012"]  # no temporary folder left
    verify(path)

    nets, state, meta = load_checkpoint(path)
    for net, sd in _nets(12).items():
        assert nets[net].keys() == sd.keys()
        assert all(torch.equal(nets[net][k], v) for k, v in sd.items())
    assert state["step"] == 12 and torch.equal(state["opt"]["m"], torch.ones(3))
    assert meta == {"step": 12, "g_args": {"hidden": 16, "out_shape": [2]}}


def test_a_crash_while_saving_leaves_the_old_checkpoints(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    _save(root, 1)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("ganforge.checkpoint.torch.save", boom)
    with pytest.raises(OSError):
        _save(root, 2)
    assert [p.name for p in root.iterdir()] == ["ckpt-0000001"]  # no partial ckpt-0000002, no temp folder
    verify(root / "ckpt-0000001")


def test_saving_the_same_step_again_replaces_it(tmp_path):
    root = tmp_path / "checkpoints"
    _save(root, 5, seed=0)
    _save(root, 5, seed=1)
    assert [p.name for p in root.iterdir()] == ["ckpt-0000005"]
    nets, _ = load_weights(root / "ckpt-0000005")
    assert torch.equal(nets["G"]["w"], _nets(1)["G"]["w"])


def test_keep_last_k(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3, 4, 5):
        _save(root, step, keep=2)
    assert [p.name for p in list_checkpoints(root)] == ["ckpt-0000004", "ckpt-0000005"]
    assert sorted(p.name for p in root.iterdir()) == ["ckpt-0000004", "ckpt-0000005"]


def test_checkpoints_sort_by_step(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (9, 10, 100):
        _save(root, step, keep=5)
    assert latest_checkpoint(root).name == "ckpt-0000100"


@pytest.mark.parametrize("name", FILES)
def test_corruption_is_detected_and_latest_falls_back(tmp_path, name):
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        _save(root, step)
    _flip_byte(root / "ckpt-0000003" / name)
    with pytest.raises(CheckpointError, match="damaged"):
        verify(root / "ckpt-0000003")
    with pytest.raises(CheckpointError):
        load_checkpoint(root / "ckpt-0000003")
    with pytest.warns(UserWarning, match=r"ckpt-0000003.*damaged.*falling back"):
        assert latest_checkpoint(root) == root / "ckpt-0000002"


def test_missing_files_and_manifest_are_detected(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        _save(root, step)
    (root / "ckpt-0000003" / "state.pt").unlink()
    (root / "ckpt-0000002" / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        verify(root / "ckpt-0000003")
    with pytest.raises(CheckpointError, match="manifest"):
        verify(root / "ckpt-0000002")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert latest_checkpoint(root) == root / "ckpt-0000001"
    assert len(w) == 2


def test_no_good_checkpoint_gives_none(tmp_path):
    root = tmp_path / "checkpoints"
    assert latest_checkpoint(root) is None
    _save(root, 1)
    _flip_byte(root / "ckpt-0000001" / "weights.safetensors")
    with pytest.warns(UserWarning):
        assert latest_checkpoint(root) is None


class _Payload:
    """Unpickling this calls ``fn(*args)``: the classic pickle code-execution payload."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _plant(ckpt, payload) -> None:
    """Replace state.pt by a malicious pickle and fix the manifest so the checksum passes."""
    torch.save({"step": 1, "evil": payload}, ckpt / "state.pt")
    manifest = json.loads((ckpt / "manifest.json").read_text())
    manifest["files"]["state.pt"] = hashlib.sha256((ckpt / "state.pt").read_bytes()).hexdigest()
    (ckpt / "manifest.json").write_text(json.dumps(manifest))
    verify(ckpt)  # the checksum no longer protects us: only the safe loader does


def test_malicious_state_is_refused_without_running_code(tmp_path):
    ckpt = _save(tmp_path / "checkpoints", 1)
    marker = tmp_path / "pwned-by-os-system"
    _plant(ckpt, _Payload(os.system, (f"touch '{marker}'",)))
    with pytest.raises(CheckpointError, match="refused: it holds more than tensors"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_malicious_state_payload_is_real(tmp_path):
    """Control: the same kind of payload does run under an unsafe loader, so the test above can fail."""
    ckpt = _save(tmp_path / "checkpoints", 1)
    marker = tmp_path / "pwned-by-open"
    _plant(ckpt, _Payload(open, (str(marker), "w")))
    with pytest.raises(CheckpointError):
        load_checkpoint(ckpt)
    assert not marker.exists()
    torch.load(ckpt / "state.pt", weights_only=False)  # what a naive loader would do
    assert marker.exists()


# -- checkpoints of real runs ---------------------------------------------------------------------

def test_restore_into_a_different_architecture_is_refused(train_tiny, make_cfg):
    run = train_tiny()
    ckpt = latest_checkpoint(run / "checkpoints")
    restore(build_state(make_cfg()), ckpt)  # the same config fits
    for other in (("model.g.hidden=32",), ("model.d.layers=3",), ("model.z_dim=5",),
                  ("data.name=gauss1d",)):
        with pytest.raises(CheckpointError, match="different model|does not fit"):
            restore(build_state(make_cfg(*other)), ckpt)


def test_restore_with_mismatched_tensors_is_refused(train_tiny, make_cfg, tmp_path):
    """Same recorded constructor arguments, but the weights do not fit (e.g. a hand-edited file)."""
    run = train_tiny()
    ckpt = latest_checkpoint(run / "checkpoints")
    nets, extra, meta = load_checkpoint(ckpt)
    nets["G"] = {k: v[..., :1] if v.dim() == 2 else v for k, v in nets["G"].items()}  # wrong shapes
    bad = save_checkpoint(tmp_path / "other", 4, nets, extra, metadata=meta)
    with pytest.raises(CheckpointError, match="does not fit"):
        restore(build_state(make_cfg()), bad)


def test_resume_with_another_architecture_is_refused(train_tiny):
    run = train_tiny()
    with pytest.raises(CheckpointError):
        resume(run, ["model.g.hidden=32", "train.steps=8"], quiet=True)


def test_resume_falls_back_past_a_damaged_checkpoint(train_tiny):
    run = train_tiny("train.steps=4", "train.ckpt_every=2")
    _flip_byte(run / "checkpoints" / "ckpt-0000004" / "weights.safetensors")
    with pytest.warns(UserWarning, match="ckpt-0000004"):
        resume(run, ["train.steps=6"], quiet=True)
    assert json.loads((run / "result.json").read_text())["step"] == 6
    assert latest_checkpoint(run / "checkpoints").name == "ckpt-0000006"


def test_resume_without_any_good_checkpoint(train_tiny):
    run = train_tiny()
    for c in list_checkpoints(run / "checkpoints"):
        _flip_byte(c / "state.pt")
    with pytest.warns(UserWarning), pytest.raises(RunDirError, match="no usable checkpoint"):
        resume(run, ["train.steps=8"], quiet=True)
