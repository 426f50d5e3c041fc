"""Complete, atomic, verifiable checkpoints, and the run state they capture.

A checkpoint is a folder ``checkpoints/ckpt-0001234/`` holding

- ``weights.safetensors``: the networks' tensors under prefixes (``G.``, ``D.``, ``G_ema.``),
- ``state.pt``: everything else (optimizers, counters, RNG states, data position), loaded with
  ``torch.load(..., weights_only=True)`` so a file can never run code,
- ``manifest.json``: the SHA-256 of both files.

It is written into a temporary folder, flushed, and renamed into place, so a crash leaves either
the old set of checkpoints or the new one. Loading verifies the checksums; a damaged checkpoint
is reported and the previous good one is used instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

PREFIX = "ckpt-"


from ._version import __version__
from .errors import CheckpointError, TrainingDiverged


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flatten(nets: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """{"G": state_dict, ...} -> {"G.layer.weight": tensor, ...} (contiguous CPU copies)."""
    return {f"{name}.{k}": v.detach().cpu().contiguous().clone()
            for name, sd in nets.items() for k, v in sd.items()}


def unflatten(flat: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, v in flat.items():
        name, _, rest = key.partition(".")
        out.setdefault(name, {})[rest] = v
    return out


def save_checkpoint(ckpt_root: Path, step: int, nets: dict, state: dict, *, keep: int = 3,
                    metadata: dict | None = None) -> Path:
    """Write checkpoint ``step`` atomically and keep only the newest ``keep`` checkpoints."""
    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"{PREFIX}{step:07d}"
    tmp = ckpt_root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
        save_file(flatten(nets), str(tmp / "weights.safetensors"), metadata=meta)
        torch.save(state, tmp / "state.pt")
        manifest = {"step": step, "files": {n: _sha256(tmp / n) for n in ("weights.safetensors", "state.pt")}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        for n in ("weights.safetensors", "state.pt", "manifest.json"):
            _fsync(tmp / n)
        if final.exists():
            old = ckpt_root / f".old-{final.name}-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
        _fsync(ckpt_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(ckpt_root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Checkpoint folders, oldest first."""
    ckpt_root = Path(ckpt_root)
    if not ckpt_root.is_dir():
        return []
    return sorted(p for p in ckpt_root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def verify(path: Path) -> None:
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError):
        raise CheckpointError(f"{path} has no readable manifest") from None
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{path}: {name} is missing")
        if _sha256(f) != digest:
            raise CheckpointError(f"{path}: {name} is damaged (checksum mismatch)")


def load_weights(path: Path, *, verify_first: bool = True) -> tuple[dict, dict]:
    """(nets {"G": sd, ...}, metadata) from a checkpoint folder (safetensors only)."""
    path = Path(path)
    if verify_first:
        verify(path)
    from safetensors import safe_open
    with safe_open(str(path / "weights.safetensors"), framework="pt") as f:
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    return unflatten(load_file(str(path / "weights.safetensors"))), meta


def load_checkpoint(path: Path) -> tuple[dict, dict, dict]:
    """(nets, state, metadata); never executes code from the files."""
    nets, meta = load_weights(path)
    try:
        state = torch.load(Path(path) / "state.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # an unpicklable / malicious payload is refused, not run
        why = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}/state.pt refused: it holds more than tensors and plain data, and "
                              f"ganforge never unpickles such files ({why[:160]})") from None
    return nets, state, meta


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    """The newest checkpoint that verifies; damaged ones are skipped with a warning."""
    for path in reversed(list_checkpoints(ckpt_root)):
        try:
            verify(path)
            return path
        except CheckpointError as e:
            warnings.warn(f"{e}; falling back to the previous checkpoint", stacklevel=2)
    return None


# -- a run's complete state ------------------------------------------------------------------

def capture_rng(z_gen: torch.Generator) -> dict:
    """Every random number generator a run draws from (torch, CUDA, Python, NumPy, the run's own)."""
    np_state = np.random.get_state()
    rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
           "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                     int(np_state[3]), float(np_state[4])],
           "z_gen": z_gen.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(z_gen: torch.Generator, rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    n = rng["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    z_gen.set_state(rng["z_gen"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def net_states(state) -> dict:
    """The plain nets' state dicts (never a DDP or compiled wrapper's: no prefixes)."""
    nets = {"G": state.G.state_dict(), "D": state.D.state_dict()}
    if state.G_ema is not None:
        nets["G_ema"] = state.G_ema.module.state_dict()
    return nets


def nonfinite(nets: dict) -> str:
    """The first ``net.key`` holding NaN/Inf, or ""."""
    for name, sd in nets.items():
        for k, v in sd.items():
            if v.is_floating_point() and not torch.isfinite(v).all():
                return f"{name}.{k}"
    return ""


# the parts of a run (attributes of ganforge.loop.RunState) saved through their state_dict()
STATEFUL = ("opt_g", "opt_d", "sched_g", "sched_d", "scaler_g", "scaler_d", "data", "objective", "lr_scale",
            "best")


def save_run(state, run_dir: Path, *, folder: str = "checkpoints", keep: int | None = None) -> Path:
    """A complete checkpoint of a run (refused if any weight is NaN/Inf): weights, optimizers,
    schedules, loss scalers, data position, objective state, learning-rate scale, best metric,
    counters and every RNG."""
    nets = net_states(state)
    bad = nonfinite(nets)
    if bad:
        raise TrainingDiverged(f"{bad} holds NaN/Inf at step {state.step}; not checkpointed")
    extra = {"step": state.step, "d_steps": state.d_steps, "images_seen": state.images_seen,
             **{k: getattr(state, k).state_dict() for k in STATEFUL}, "rng": capture_rng(state.z_gen)}
    if state.G_ema is not None:
        extra["ema_n_averaged"] = state.G_ema.n_averaged.detach().cpu()
    meta = {"step": state.step, "arch": state.cfg.model.arch, "g_args": state.g_args,
            "d_args": state.d_args, "ganforge": __version__}
    return save_checkpoint(Path(run_dir) / folder, state.step, nets, extra,
                           keep=state.cfg.train.keep_ckpts if keep is None else keep, metadata=meta)


def restore_run(state, ckpt: Path) -> None:
    """Load a checkpoint into a run built from the same config (a one-line error if it does not fit)."""
    nets, extra, meta = load_checkpoint(ckpt)
    if meta.get("g_args") != state.g_args or meta.get("d_args") != state.d_args:
        raise CheckpointError(f"{ckpt} was made by a different model ({meta.get('arch')}, G {meta.get('g_args')}); "
                              f"it does not fit this config")
    try:
        state.G.load_state_dict(nets["G"])
        state.D.load_state_dict(nets["D"])
        if state.G_ema is not None:
            state.G_ema.module.load_state_dict(nets.get("G_ema", nets["G"]))
            state.G_ema.n_averaged.fill_(int(extra.get("ema_n_averaged", 0)))
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{ckpt} does not fit this model: {str(e).splitlines()[0]}") from None
    for k in STATEFUL:
        if extra.get(k):  # absent or empty: saved before the part existed, or with nothing to keep
            getattr(state, k).load_state_dict(extra[k])
    restore_rng(state.z_gen, extra["rng"])
    state.step, state.d_steps, state.images_seen = extra["step"], extra["d_steps"], extra["images_seen"]
