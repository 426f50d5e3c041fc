"""Training statistics: collected by name during a step, written at log steps.

:class:`Reporter` gathers detached scalar tensors by hierarchical name (``loss/D/gp``) and reads
them (one device sync) only at log steps; :class:`MetricsLog` appends them to ``metrics.jsonl``
(and TensorBoard when it is installed).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from .atomic import write_error, write_text_atomic
from .rundir import METRICS


class Reporter:
    """Collects detached scalar tensors by name; reads them (one sync) only at log steps.

    ``reduce`` averages the means over the processes of a distributed run (one all-reduce per
    flush), so every process logs, and checks for NaN, the same numbers: those of the global batch."""

    def __init__(self, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.values: dict[str, list[torch.Tensor]] = {}
        self.reduce = reduce

    def add(self, stats: dict) -> None:
        for k, v in stats.items():
            self.values.setdefault(k, []).append(v)

    def flush(self) -> dict[str, float]:
        if not self.values:
            return {}
        keys = list(self.values)
        means = torch.stack([torch.stack([t.float().cpu() for t in self.values[k]]).mean() for k in keys])
        if self.reduce is not None:
            means = self.reduce(means)
        self.values = {}
        return dict(zip(keys, means.tolist()))


class MetricsLog:
    """Appends one JSON object per line to metrics.jsonl (and TensorBoard when installed).

    A line is written whole or not at all: a write that fails (a full disk) is cut back to the
    end of the previous line, and the run goes on with a warning."""

    def __init__(self, run_dir: Path, tensorboard: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS
        if resume_step is not None:
            drop_after(self.path, resume_step)
        self._f = open(self.path, "ab", buffering=0)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(Path(run_dir) / "events"))
            except Exception:  # tensorboard is optional
                self._tb = None

    def write(self, step: int, values: dict) -> None:
        clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in values.items()}
        self._append((json.dumps({"step": step, **clean}) + "\n").encode(), step)
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def _append(self, line: bytes, step: int) -> None:
        end = os.fstat(self._f.fileno()).st_size
        try:
            view = memoryview(line)
            while view:  # a raw write may write part of the line and report how much
                view = view[self._f.write(view):]
        except OSError as e:
            try:
                os.ftruncate(self._f.fileno(), end)  # no truncated line stays in the log
            except OSError:
                pass
            print(f"warning: metrics of step {step} not logged ({write_error(e, self.path)})", file=sys.stderr)

    def close(self) -> None:
        self._f.close()
        if self._tb is not None:
            self._tb.close()


def drop_after(path: Path, step: int) -> None:
    """Remove the lines logged after ``step`` (a resumed run logs those steps again) and any
    truncated last line, rewriting the file atomically."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except ValueError:  # a line cut short by a crash
            continue
    write_text_atomic(path, "".join(f"{line}\n" for line in keep))


class NoLog:
    """The metrics log of the processes other than the main one: they write nothing."""

    def write(self, step: int, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


__all__ = ["MetricsLog", "NoLog", "Reporter"]
