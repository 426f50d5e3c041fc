"""Reading run folders for the studio: find them, summarise them, follow their metrics.

Everything here only reads plain files (YAML with ``yaml.safe_load``, JSON, PNG names): nothing
in a run folder is executed or unpickled. Paths handed in from the page go through
:func:`safe_path`, which refuses anything that leaves the runs folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from array import array
from collections import OrderedDict
from pathlib import Path

import yaml

from ..rundir import CHECKPOINTS, CONFIG, METRICS, RUN_INFO, SAMPLES

RESULT = "result.json"
SCAN_DEPTH = 3  # run folders are found this many levels below the runs folder at most
SKIP_DIRS = {CHECKPOINTS, SAMPLES, "events", "__pycache__"}
SAMPLE_RE = re.compile(r"^step-(\d+)\.png$")
TAIL_BYTES = 64 * 1024  # the runs list reads at most this much of each metrics.jsonl
NOT_PLOTTED = {"step", "event", "time", "kimg"}  # logged, but not curves of their own
SERVED_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".json", ".yaml", ".jsonl", ".txt"}
CKPT_PREFIX = "ckpt-"  # ganforge.checkpoint.PREFIX; not imported, as that module loads torch
CKPT_RE = re.compile(r"^ckpt-(\d+)$")


class NotFound(LookupError):
    """A run or file that does not exist inside the runs folder (the server answers 404)."""


class StudioError(ValueError):
    """A request the studio refuses (a user mistake): the page shows its one-line message."""


def list_checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders, oldest first (ganforge.checkpoint.list_checkpoints without torch,
    so that the server stays small until a model is used)."""
    try:
        return sorted(p for p in Path(root).iterdir() if p.is_dir() and p.name.startswith(CKPT_PREFIX))
    except OSError:
        return []


def safe_path(root: Path, rel: str) -> Path:
    """``root/rel`` resolved, if it is an existing regular file or folder inside ``root``.

    Refused (:class:`NotFound`): absolute paths, ``..`` parts, backslashes, NUL bytes, and
    anything whose real path (after following symlinks) lies outside ``root``."""
    if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise NotFound(rel)
    parts = rel.split("/")
    if any(p in ("..", "") for p in parts[:-1]) or parts[-1] == "..":
        raise NotFound(rel)
    root = root.resolve()
    try:
        real = (root / rel).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        raise NotFound(rel) from None
    if real != root and root not in real.parents:
        raise NotFound(rel)
    return real


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def _number(v) -> float | None:
    """A logged value as a float (MetricsLog writes non-finite floats as "nan" / "inf")."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(v)
    return None


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _json_floats(a: array) -> list:
    """An array of floats as a JSON-ready list: NaN / Inf become None."""
    values = a.tolist()
    if math.isfinite(sum(values)):  # the common case: every value finite
        return values
    return [x if math.isfinite(x) else None for x in values]


def read_tail_row(path: Path) -> tuple[dict | None, bool]:
    """(the last complete metrics line of a metrics.jsonl, whether an event line follows it);
    cheap: reads only the tail."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            chunk = f.read()
    except OSError:
        return None, False
    event_after = False
    for line in reversed(chunk.split(b"\n")):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "step" in row:
            if "event" not in row:
                return row, event_after
            event_after = True
    return None, event_after


def find_runs(root: Path) -> list[Path]:
    """Run folders (holding config.yaml and run.json) under ``root``, at most SCAN_DEPTH deep,
    without following symlinked folders and skipping hidden ones."""
    found = []
    root = root.resolve()

    def walk(d: Path, depth: int):
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        names = {e.name for e in entries}
        if CONFIG in names and RUN_INFO in names and d != root:
            found.append(d)
            return
        if depth >= SCAN_DEPTH:
            return
        for e in entries:
            if e.name.startswith(".") or e.name in SKIP_DIRS or not e.is_dir(follow_symlinks=False):
                continue
            walk(Path(e.path), depth + 1)

    walk(root, 0)
    return found


def run_status(run: Path, last: dict | None, *, now: float, stale_after: float, alive: bool = False,
               event_after: bool = False) -> tuple[str, str]:
    """(status, detail) of a run folder.

    - ``running``: a process this studio started is alive, or the folder was written in the
      last ``stale_after`` seconds (metrics.jsonl, samples or checkpoints still growing);
    - ``finished`` / ``interrupted``: result.json (written when a session ends) is newer than
      the metrics, with its reason ("done", "time budget" / "interrupted");
    - ``diverged``: the last line holds NaN/Inf (training gave up; after a NaN that was rolled
      back, an event line follows it and the run goes on);
    - ``stopped``: none of these (the process was killed or crashed without a result)."""
    metrics_t = _mtime(run / METRICS)
    activity = max(metrics_t, _mtime(run / SAMPLES), _mtime(run / CHECKPOINTS))
    if alive:
        return "running", "started here"
    result_t = _mtime(run / RESULT)
    if result_t and result_t >= metrics_t:
        try:
            reason = json.loads((run / RESULT).read_text()).get("reason", "done")
        except (OSError, ValueError, AttributeError):
            reason = "done"
        return ("interrupted" if reason == "interrupted" else "finished"), str(reason)
    if last is not None and not event_after:
        bad = [k for k, v in last.items() if (x := _number(v)) is not None and not math.isfinite(x)]
        if bad:
            return "diverged", f"{', '.join(bad[:3])} became NaN/Inf at step {last.get('step')}"
    age = now - activity if activity else math.inf
    if age < stale_after:
        return "running", f"last write {age:.0f}s ago"
    return "stopped", "no result.json and no writes for " + (f"{age:.0f}s" if math.isfinite(age) else "ever")


def list_samples(run: Path) -> list[tuple[int, str]]:
    """(step, file name) of the sample grids, by step."""
    try:
        names = os.listdir(run / SAMPLES)
    except OSError:
        return []
    return sorted((int(m.group(1)), n) for n in names if (m := SAMPLE_RE.match(n)))


def list_ckpts(run: Path) -> list[dict]:
    """Checkpoints with their step; the one kept in checkpoints/best/ is marked ``best``."""
    out = []
    for folder, best in ((run / CHECKPOINTS, False), (run / CHECKPOINTS / "best", True)):
        for p in list_checkpoints(folder):
            if m := CKPT_RE.match(p.name):
                out.append({"name": ("best/" if best else "") + p.name, "step": int(m.group(1)), "best": best})
    return sorted(out, key=lambda c: (c["step"], c["best"]))


class MetricsTail:
    """A metrics.jsonl followed incrementally: only bytes appended since the last call are read,
    and the values are kept as columns (one float array per key, NaN where a row lacks it)."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self._reset()

    def _reset(self):
        self.offset = 0
        self.ino = None
        self.steps = array("d")
        self.cols: dict[str, array] = {}
        self.events: list[dict] = []
        self.bad_lines = 0

    def update(self) -> None:
        try:
            st = self.path.stat()
        except OSError:
            self._reset()
            return
        if st.st_ino != self.ino or st.st_size < self.offset:  # replaced or truncated: start again
            self._reset()
            self.ino = st.st_ino
        if st.st_size == self.offset:
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(st.st_size - self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return  # no complete line yet
        self.offset += end + 1
        lines = [line for line in data[:end].split(b"\n") if line.strip()]
        try:  # one parse for all new lines (fast); line by line only when one of them is broken
            rows = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:
            rows = []
            for line in lines:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    self.bad_lines += 1
        self._add_rows(rows)

    def _add_rows(self, rows: list) -> None:
        """Append parsed lines: event lines to ``events``, the others column by column."""
        good = []
        for row in rows:
            try:
                step = float(row["step"])
            except (KeyError, TypeError, ValueError):
                self.bad_lines += 1
                continue
            if "event" in row:
                self.events.append({"step": int(step), "kind": "event", "text": str(row["event"])})
            else:
                good.append((step, row))
        if not good:
            return
        n = len(self.steps)
        self._pad()
        self.steps.extend(step for step, _ in good)
        keys = set().union(*(row.keys() for _, row in good)) - NOT_PLOTTED
        for k in keys:
            vals = [row.get(k, math.nan) for _, row in good]
            try:
                new = array("d", vals)  # all numbers: one C-level conversion
            except TypeError:  # "nan" / "inf" strings, or values that are not numbers
                new = array("d", [x if (x := _number(v)) is not None else math.nan for v in vals])
            if k not in self.cols:
                if all(math.isnan(x) for x in new):
                    continue  # a key that never held a number (e.g. a text field)
                self.cols[k] = array("d", [math.nan]) * n
            self.cols[k].extend(new)

    def _pad(self) -> None:
        n = len(self.steps)
        for col in self.cols.values():
            if len(col) < n:
                col.extend(array("d", [math.nan]) * (n - len(col)))

    def all_events(self) -> list[dict]:
        with self.lock:
            self.update()
            return list(self.events)

    def since(self, start: int) -> dict:
        """Rows ``start..`` as JSON-ready columns (non-finite values as null)."""
        with self.lock:
            self.update()
            self._pad()
            total = len(self.steps)
            reset = start > total
            start = 0 if reset else max(0, start)
            return {"rows": total, "start": start, "reset": reset,
                    "step": [int(s) for s in self.steps[start:]],
                    "series": {k: _json_floats(c[start:]) for k, c in self.cols.items()},
                    "events": list(self.events), "bad_lines": self.bad_lines}


class RunStore:
    """The run folders under one root, with a small cache of followed metrics logs."""

    def __init__(self, root: str | Path, *, stale_after: float = 180.0, max_followed: int = 12):
        self.root = Path(root).expanduser().resolve()
        self.stale_after = stale_after
        self.max_followed = max_followed
        self._tails: OrderedDict[str, MetricsTail] = OrderedDict()
        self._cfg_cache: dict[str, tuple[float, dict]] = {}
        self._tail_cache: dict[str, tuple[tuple, dict | None]] = {}
        self._lock = threading.Lock()

    def run_id(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def path(self, run_id: str) -> Path:
        """The run folder of an id from the page; NotFound unless it is a run inside root."""
        p = safe_path(self.root, run_id)
        if not p.is_dir() or not (p / CONFIG).is_file() or not (p / RUN_INFO).is_file():
            raise NotFound(run_id)
        return p

    def config(self, run: Path) -> dict:
        t = _mtime(run / CONFIG)
        key = str(run)
        hit = self._cfg_cache.get(key)
        if hit and hit[0] == t:
            return hit[1]
        try:
            cfg = yaml.safe_load((run / CONFIG).read_text())
            cfg = cfg if isinstance(cfg, dict) else {}
        except (OSError, yaml.YAMLError):
            cfg = {}
        self._cfg_cache[key] = (t, cfg)
        return cfg

    def _last_row(self, run: Path) -> tuple[dict | None, bool]:
        """:func:`read_tail_row`, re-read only when metrics.jsonl changed."""
        try:
            st = (run / METRICS).stat()
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            return None, False
        hit = self._tail_cache.get(str(run))
        if hit is None or hit[0] != key:
            hit = self._tail_cache[str(run)] = (key, read_tail_row(run / METRICS))
        return hit[1]

    def info(self, run: Path) -> dict:
        try:
            info = json.loads((run / RUN_INFO).read_text())
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def summary(self, run: Path, *, now: float | None = None, alive: bool = False) -> dict:
        now = time.time() if now is None else now
        last, event_after = self._last_row(run)
        status, detail = run_status(run, last, now=now, stale_after=self.stale_after, alive=alive,
                                    event_after=event_after)
        cfg = self.config(run)
        samples = list_samples(run)
        rid = self.run_id(run)
        last_metrics = {k: _finite_or_none(x) if (x := _number(v)) is not None else v
                        for k, v in (last or {}).items() if k != "step" and _number(v) is not None}
        return {"id": rid, "name": run.name, "started_here": alive, "preset": cfg.get("preset", ""), "status": status,
                "detail": detail, "step": (last or {}).get("step", 0),
                "total_steps": (cfg.get("train") or {}).get("steps"),
                "images_seen": round(float(last_metrics.get("kimg") or 0) * 1000),
                "last": last_metrics, "has_checkpoint": bool(list_checkpoints(run / CHECKPOINTS)),
                "updated": max(_mtime(run / METRICS), _mtime(run / SAMPLES)),
                "newest_sample": f"/files/{rid}/{SAMPLES}/{samples[-1][1]}" if samples else None}

    def list(self, alive: set[str] = frozenset()) -> list[dict]:
        now = time.time()
        return [self.summary(r, now=now, alive=self.run_id(r) in alive) for r in find_runs(self.root)]

    def tail(self, run: Path) -> MetricsTail:
        key = str(run)
        with self._lock:
            t = self._tails.pop(key, None) or MetricsTail(run / METRICS)
            self._tails[key] = t
            while len(self._tails) > self.max_followed:
                self._tails.popitem(last=False)
        return t

    def detail(self, run: Path, alive: bool = False) -> dict:
        rid = self.run_id(run)
        info = self.info(run)
        events = self.tail(run).all_events()
        skipped = re.search(r"(\d+) unreadable files skipped", str(info.get("data", "")))
        if skipped:
            events.insert(0, {"step": 0, "kind": "skipped files", "text": f"{skipped.group(1)} unreadable data files skipped"})
        s = self.summary(run, alive=alive)
        if s["status"] in ("interrupted", "diverged", "stopped"):
            events.append({"step": s["step"], "kind": s["status"], "text": s["detail"]})
        try:
            config_text = (run / CONFIG).read_text()
        except OSError:
            config_text = ""
        return {"summary": s, "config_text": config_text, "info": info, "checkpoints": list_ckpts(run),
                "samples": [{"step": st, "url": f"/files/{rid}/{SAMPLES}/{n}"} for st, n in list_samples(run)],
                "events": events}


__all__ = ["NotFound", "StudioError", "RunStore", "MetricsTail", "safe_path", "find_runs", "run_status", "list_samples",
           "list_ckpts", "read_tail_row", "SERVED_SUFFIXES"]
