"""Training statistics: collected by name during a step, written at log steps.

:class:`Reporter` gathers detached scalar tensors by hierarchical name (``loss/D/gp``) and reads
them (one device sync) only at log steps; :class:`MetricsLog` appends them to ``metrics.jsonl``
(and TensorBoard when it is installed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import torch

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
    """Appends one JSON object per line to metrics.jsonl (and TensorBoard when installed)."""

    def __init__(self, run_dir: Path, tensorboard: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS
        if resume_step is not None:
            drop_after(self.path, resume_step)
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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{line}\n" for line in keep))
    tmp.replace(path)


class NoLog:
    """The metrics log of the processes other than the main one: they write nothing."""

    def write(self, step: int, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


__all__ = ["MetricsLog", "NoLog", "Reporter"]
