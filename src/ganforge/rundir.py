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


from .atomic import os_error, write_json_atomic, write_text_atomic
from .errors import RunDirError


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"


def create_run_dir(out: str | Path, name: str) -> Path:
    """Make ``out/NNNNN-name``, numbered one past the highest existing run (never reusing one)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: is a file, not a folder; choose another `out` folder for the runs")
    try:
        out.mkdir(parents=True, exist_ok=True)
        nums = [int(m.group(1)) for p in out.iterdir() if (m := re.match(r"^(\d{5,})-", p.name))]
    except OSError as e:
        raise os_error(e, out, "the runs folder (`out`)") from None
    n = max(nums, default=-1) + 1
    while True:
        path = out / f"{n:05d}-{_safe(name)}"
        try:
            path.mkdir()  # exclusive: fails if another process took this number
            return path
        except FileExistsError:
            n += 1
        except OSError as e:  # a name too long for the file system, a read-only or full disk
            raise os_error(e, path, "a new run folder") from None


def require_writable(folder: str | Path, action: str) -> Path:
    """``folder`` if a file can be created in it; else a one-line RunDirError saying what to do
    (checked with a real file: root ignores permissions but not a read-only mount)."""
    folder = Path(folder)
    probe = folder / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        e.filename = str(folder)  # name the folder, not the probe
        raise os_error(e, folder, action) from None
    return folder


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


def output_folder(folder: str | Path, action: str) -> Path:
    """``folder`` created (with its parents) and checked writable for a command's outputs; a
    one-line RunDirError naming the path and what to do otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunDirError(f"{folder}: is a file, not a folder; choose another output folder for {action}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error(e, folder, action) from None
    return require_writable(folder, action)


def output_file(path: str | Path, action: str) -> Path:
    """``path`` ready to be written as a file by ``action`` (its folder made and writable)."""
    path = Path(path)
    if path.is_dir():
        raise RunDirError(f"{path}: is a folder; give a file name for {action}")
    output_folder(path.parent, action)
    return path


__all__ = ["CHECKPOINTS", "CONFIG", "METRICS", "RUN_INFO", "SAMPLES", "check_run_dir", "create_run_dir",
           "output_file", "output_folder", "read_metrics", "read_run", "require_writable", "write_json_atomic",
           "write_text_atomic"]
