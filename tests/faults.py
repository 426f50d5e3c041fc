"""Real faults for the reliability tests: a small tmpfs that fills up, a read-only bind mount, and
a check that no half-written file is left under its real name.

Mounting needs root (or CAP_SYS_ADMIN); without it the tests that use these skip with a reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int = 30):
    """A real ``size_mb`` MB tmpfs mounted at ``path`` (skips the test when mounting is not permitted)."""
    path.mkdir(parents=True, exist_ok=True)
    r = _mount("-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path))
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield path
    finally:
        _umount(path)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` with one file so that only about ``leave`` bytes stay free."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with open(disk / "filler", "ab") as f:
        f.write(b"\0" * max(0, free - leave))


def free_all(disk: Path) -> None:
    (disk / "filler").unlink(missing_ok=True)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` made read-only by a read-only bind mount of itself (root ignores chmod)."""
    r = _mount("--bind", str(path), str(path))
    if r.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root): {r.stderr.strip()}")
    try:
        r = _mount("-o", "remount,ro,bind", str(path))
        if r.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {r.stderr.strip()}")
        yield path
    finally:
        _umount(path)


def half_written(root: Path) -> list[str]:
    """Every file under ``root`` that is not whole: leftover temporary files, PNGs that do not
    decode, metrics lines that do not parse or a last line without its newline, unreadable
    config.yaml / *.json, checkpoints that do not verify and load."""
    from PIL import Image

    from ganforge.checkpoint import PREFIX, load_checkpoint

    bad = []
    for p in sorted(root.rglob("*")):
        name = p.name
        if ".tmp" in name or name.startswith(".old-"):
            bad.append(f"leftover temporary {p}")
        elif p.is_dir() and name.startswith(PREFIX):
            try:
                load_checkpoint(p)
            except Exception as e:  # noqa: BLE001  (any failure is a finding)
                bad.append(f"checkpoint {p}: {e}")
        elif not p.is_file() or name == "filler":
            continue
        elif name.endswith(".png"):
            try:
                with Image.open(p) as im:
                    im.load()
            except Exception as e:  # noqa: BLE001
                bad.append(f"png {p}: {e}")
        elif name == "metrics.jsonl":
            text = p.read_text()
            if text and not text.endswith("\n"):
                bad.append(f"{p}: last line cut short")
            for line in text.splitlines():
                try:
                    json.loads(line)
                except ValueError:
                    bad.append(f"{p}: bad line {line[:40]!r}")
        elif name.endswith(".json"):
            try:
                json.loads(p.read_text())
            except ValueError as e:
                bad.append(f"{p}: {e}")
        elif name == "config.yaml":
            if not isinstance(yaml.safe_load(p.read_text()), dict):
                bad.append(f"{p}: not a config mapping")
    return bad
