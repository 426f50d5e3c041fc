"""Run folders: auto-numbered, never overwritten, with a resolved config and a metrics log."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml

CONFIG = "config.yaml"
RUN_INFO = "run.json"
METRICS = "metrics.jsonl"
SAMPLES = "samples"
CHECKPOINTS = "checkpoints"


from .errors import RunDirError


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


def read_metrics(run_dir: str | Path) -> list[dict]:
    p = Path(run_dir) / METRICS
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
