"""Complete, atomic, verifiable checkpoints.

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
import shutil
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PREFIX = "ckpt-"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (missing, damaged, or from another model)."""


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
