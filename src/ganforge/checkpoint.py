"""Complete, atomic, verifiable checkpoints, and the run state they capture.

A checkpoint is a folder ``checkpoints/ckpt-0001234/`` holding

- ``weights.safetensors``: the networks' tensors under prefixes (``G.``, ``D.``, ``G_ema.``),
- ``state.pt``: everything else (optimizers, counters, RNG states, data position), loaded with
  ``torch.load(..., weights_only=True)`` so a file can never run code,
- ``manifest.json``: the SHA-256 of both files.

It is written into a temporary folder, flushed, and renamed into place, so a crash leaves either
the old set of checkpoints or the new one. Loading verifies the checksums; a damaged checkpoint
is reported and the previous good one is used instead.

A checkpoint is used only if the manifest covers every file in the folder, every file matches its
checksum, both files parse, the step in the folder name, the manifest, the metadata and the
state agree, and no weight is NaN/Inf. The folder must be inside the checkpoints folder (a
symlink elsewhere is refused). Tensors whose dtype differs from the model's are refused, never
cast. Temporary folders of writers that died mid-save are removed at the next save or resume.
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
from .atomic import pid_alive
from .errors import CheckpointError, TrainingDiverged
from .optim import load_optimizer_state


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


FILES = ("weights.safetensors", "state.pt")  # every file a checkpoint holds besides its manifest
TMP, OLD = ".tmp-", ".old-"  # writers' temporary folders: .tmp-ckpt-0001234-<pid>, .old-ckpt-0001234-<pid>


def _remove(path: Path) -> None:
    """Delete a checkpoint folder, or the link itself when it is a symlink (never what it points to)."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale(ckpt_root: Path) -> list[Path]:
    """Remove the temporary folders of writers that died mid-save (``kill -9``, power loss): those
    whose process id in the name is no longer running. Returns what was removed."""
    ckpt_root = Path(ckpt_root)
    gone = []
    if not ckpt_root.is_dir():
        return gone
    for p in ckpt_root.iterdir():
        if not p.name.startswith((TMP, OLD)):
            continue
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and (int(pid) == os.getpid() or not pid_alive(int(pid))):
            _remove(p)
            gone.append(p)
    return gone


def save_checkpoint(ckpt_root: Path, step: int, nets: dict, state: dict, *, keep: int = 3,
                    metadata: dict | None = None) -> Path:
    """Write checkpoint ``step`` atomically and keep only the newest ``keep`` checkpoints."""
    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    remove_stale(ckpt_root)
    final = ckpt_root / f"{PREFIX}{step:07d}"
    tmp = ckpt_root / f"{TMP}{final.name}-{os.getpid()}"
    tmp.mkdir()
    try:
        meta = {k: json.dumps(v) for k, v in {**(metadata or {}), "step": step}.items()}
        save_file(flatten(nets), str(tmp / FILES[0]), metadata=meta)
        torch.save(state, tmp / FILES[1])
        manifest = {"step": step, "files": {n: _sha256(tmp / n) for n in FILES}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        for n in (*FILES, "manifest.json"):
            _fsync(tmp / n)
        if final.exists() or final.is_symlink():
            old = ckpt_root / f"{OLD}{final.name}-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            _remove(old)
        else:
            tmp.rename(final)
        _fsync(ckpt_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(ckpt_root, warn=False)[:-keep] if keep > 0 else []:
        _remove(old)
    return final


def step_of(path: Path) -> int | None:
    """The step in a checkpoint folder's name (``ckpt-0001234`` -> 1234), None for other names."""
    tail = Path(path).name[len(PREFIX):]
    return int(tail) if Path(path).name.startswith(PREFIX) and tail.isdigit() else None


def list_checkpoints(ckpt_root: Path, *, warn: bool = True) -> list[Path]:
    """Checkpoint folders inside ``ckpt_root``, oldest first. A symlink pointing out of the folder
    is refused (with a warning): its name would claim a step its content may not hold."""
    ckpt_root = Path(ckpt_root)
    if not ckpt_root.is_dir():
        return []
    root = ckpt_root.resolve()
    found = []
    for p in ckpt_root.iterdir():
        if step_of(p) is None or not p.is_dir():
            continue
        if p.is_symlink() and p.resolve().parent != root:
            if warn:
                warnings.warn(f"{p} is a symlink to {p.resolve()}, outside {ckpt_root}; refused", stacklevel=2)
            continue
        found.append(p)
    return sorted(found, key=step_of)


def verify(path: Path) -> dict:
    """Check a checkpoint's files against its manifest, which must list every file the checkpoint
    holds; returns the manifest."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{path} has no readable manifest") from None
    if not isinstance(files, dict):
        raise CheckpointError(f"{path} has no readable manifest (its file list is not a mapping)")
    present = {p.name for p in path.iterdir()} - {"manifest.json"}
    unlisted = sorted((present | set(FILES)) - set(files))
    if unlisted:
        raise CheckpointError(f"{path}: the manifest does not cover {', '.join(unlisted)}")
    named, step = step_of(path), manifest.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or named not in (None, step):
        raise CheckpointError(f"{path}: the manifest is for step {str(step)[:40]}, the folder name says {named}")
    for name, digest in files.items():
        f = path / name
        if f.is_symlink() or not f.is_file():
            raise CheckpointError(f"{path}: {name} is missing" + (" (a symlink is refused)" * f.is_symlink()))
        if _sha256(f) != digest:
            raise CheckpointError(f"{path}: {name} is damaged (checksum mismatch)")
    return manifest


def load_weights(path: Path, *, verify_first: bool = True) -> tuple[dict, dict]:
    """(nets {"G": sd, ...}, metadata) from a checkpoint folder (safetensors only). Anything that
    does not parse, a step that disagrees with the folder's name, and NaN/Inf weights are a
    CheckpointError."""
    path = Path(path)
    manifest = verify(path) if verify_first else {}
    from safetensors import safe_open
    try:
        with safe_open(str(path / FILES[0]), framework="pt") as f:
            meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
        flat = load_file(str(path / FILES[0]))
    except Exception as e:  # noqa: BLE001  (SafetensorError, JSON errors: a damaged file, whatever the cause)
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise CheckpointError(f"{path}/{FILES[0]} does not parse ({why})") from None
    step, named = meta.get("step"), manifest.get("step", step_of(path))
    if not isinstance(step, int) or isinstance(step, bool) or named not in (None, step):
        raise CheckpointError(f"{path}: its weights say step {str(step)[:40]}, "
                              f"the folder name and manifest say {named}")
    nets = unflatten(flat)
    bad = nonfinite(nets)
    if bad:
        raise CheckpointError(f"{path}: {bad} holds NaN/Inf; these weights are unusable")
    return nets, meta


def load_checkpoint(path: Path) -> tuple[dict, dict, dict]:
    """(nets, state, metadata); never executes code from the files."""
    nets, meta = load_weights(path)
    try:
        state = torch.load(Path(path) / FILES[1], map_location="cpu", weights_only=True)
    except Exception as e:  # an unpicklable / malicious payload is refused, not run
        why = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}/state.pt refused: it holds more than tensors and plain data, and "
                              f"ganforge never unpickles such files ({why[:160]})") from None
    if not isinstance(state, dict) or state.get("step") != meta["step"]:
        got = state.get("step") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}/state.pt is for step {str(got)[:40]}, not {meta['step']}")
    return nets, state, meta


def newest_checkpoint(ckpt_root: Path, *, full: bool = False) -> Path:
    """The newest checkpoint that verifies and parses (``full``: its state.pt too, as resuming
    needs); damaged ones are skipped with a warning, and a CheckpointError lists why when none is left."""
    why = []
    for path in reversed(list_checkpoints(ckpt_root)):
        try:
            (load_checkpoint if full else load_weights)(path)
            return path
        except CheckpointError as e:
            warnings.warn(f"{e}; falling back to the previous checkpoint", stacklevel=2)
            why.append(str(e))
    if not why:
        raise CheckpointError(f"{ckpt_root} holds no checkpoint")
    more = f"; {len(why) - 1} older ones refused too (see the warnings)" if len(why) > 1 else ""
    raise CheckpointError(f"no usable checkpoint in {ckpt_root}: {why[0][:300]}{more}")


def latest_checkpoint(ckpt_root: Path, *, full: bool = False) -> Path | None:
    """:func:`newest_checkpoint`, or None when there is none."""
    try:
        return newest_checkpoint(ckpt_root, full=full)
    except CheckpointError:
        return None


def check_dtypes(net: torch.nn.Module, sd: dict, where: str) -> None:
    """A tensor whose dtype differs from the model's (int32 or float16 where float32 is expected)
    is an error: ganforge never casts weights silently."""
    for k, v in net.state_dict().items():
        got = sd.get(k)
        if got is not None and got.dtype != v.dtype:
            raise CheckpointError(f"{where}: {k} is {str(got.dtype).replace('torch.', '')} where the model has "
                                  f"{str(v.dtype).replace('torch.', '')}; convert the weights explicitly")


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
        check_dtypes(state.G, nets["G"], f"{ckpt} (G)")
        check_dtypes(state.D, nets["D"], f"{ckpt} (D)")
        state.G.load_state_dict(nets["G"])
        state.D.load_state_dict(nets["D"])
        if state.G_ema is not None:
            check_dtypes(state.G_ema.module, nets.get("G_ema", nets["G"]), f"{ckpt} (G_ema)")
            state.G_ema.module.load_state_dict(nets.get("G_ema", nets["G"]))
            state.G_ema.n_averaged.fill_(int(extra.get("ema_n_averaged", 0)))
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{ckpt} does not fit this model: {str(e).splitlines()[0]}") from None
    for k in STATEFUL:
        if extra.get(k):  # absent or empty: saved before the part existed, or with nothing to keep
            part = getattr(state, k)
            if isinstance(part, torch.optim.Optimizer):
                load_optimizer_state(part, extra[k])
            else:
                part.load_state_dict(extra[k])
    restore_rng(state.z_gen, extra["rng"])
    state.step, state.d_steps, state.images_seen = extra["step"], extra["d_steps"], extra["images_seen"]
