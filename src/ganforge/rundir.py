"""Run folders: auto-numbered, never overwritten, with a resolved config and a metrics log."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import yaml

CONFIG = "config.yaml"
RUN_INFO = "run.json"
METRICS = "metrics.jsonl"
SAMPLES = "samples"
CHECKPOINTS = "checkpoints"


class RunDirError(ValueError):
    """A path that is not a usable run folder (a user mistake: a one-line message)."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"


def create_run_dir(out: str | Path, name: str) -> Path:
    """Make ``out/NNNNN-name``, numbered one past the highest existing run (never reusing one)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    nums = [int(m.group(1)) for p in out.iterdir() if (m := re.match(r"^(\d{5,})-", p.name))]
    n = max(nums, default=-1) + 1
    while True:
        path = out / f"{n:05d}-{_safe(name)}"
        try:
            path.mkdir()  # exclusive: fails if another process took this number
            return path
        except FileExistsError:
            n += 1


def check_run_dir(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise RunDirError(f"run folder not found: {p}")
    if not (p / CONFIG).is_file() or not (p / RUN_INFO).is_file():
        raise RunDirError(f"{p} is not a ganforge run folder (no {CONFIG} / {RUN_INFO})")
    return p


def read_run(path: str | Path) -> tuple[dict, dict]:
    """(config dict, run info dict) of a run folder."""
    p = check_run_dir(path)
    try:
        cfg = yaml.safe_load((p / CONFIG).read_text())
        info = json.loads((p / RUN_INFO).read_text())
    except (yaml.YAMLError, ValueError) as e:
        raise RunDirError(f"{p} has an unreadable {CONFIG} or {RUN_INFO}: {str(e).splitlines()[0]}") from None
    return cfg, info


class MetricsLog:
    """Appends one JSON object per line to metrics.jsonl (and TensorBoard when installed)."""

    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.path = Path(run_dir) / METRICS
        self._f = open(self.path, "a", buffering=1)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(Path(run_dir) / "events"))
            except Exception:  # tensorboard is optional
                self._tb = None

    def write(self, step: int, values: dict) -> None:
        clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in values.items()}
        self._f.write(json.dumps({"step": step, **clean}) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._f.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    p = Path(run_dir) / METRICS
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
