"""Training runs started from the studio: ``ganforge train`` child processes.

A run is started as ``python -m ganforge train PRESET --set out=RUNS_DIR --set ...`` (or
``--resume RUN``) with its output in ``RUNS_DIR/.studio/``. Stopping sends SIGINT, the same as
Ctrl-C: the run writes a final checkpoint and result.json ("interrupted") and can be resumed.
Only processes this studio started can be stopped.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .runs import StudioError as UsageError

LOG_DIR = ".studio"  # inside the runs folder; hidden, so it is never listed as a run
_RUN_LINE = re.compile(r"^(?:run folder: |resuming )(.+?)(?: from ckpt-\d+.*)?$", re.M)


@dataclass
class Launch:
    proc: subprocess.Popen
    log: Path
    what: str  # "train dcgan" / "resume 00003-dcgan"
    started: float = field(default_factory=time.time)
    run: Path | None = None  # known once the child printed its run folder

    def find_run(self) -> Path | None:
        if self.run is None:
            try:
                m = _RUN_LINE.search(self.log.read_text(errors="replace"))
            except OSError:
                m = None
            if m:
                self.run = Path(m.group(1).strip()).resolve()
        return self.run

    def tail(self, n: int = 800) -> str:
        """The last ``n`` bytes of the run's output."""
        try:
            with open(self.log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - n))
                return f.read().decode(errors="replace")
        except OSError:
            return ""


def _check_overrides(overrides) -> list[str]:
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise UsageError("overrides must be a list of KEY=VALUE strings")
    out = [o.strip() for o in overrides if o.strip()]
    for o in out:
        key = o.split("=", 1)[0].strip()
        if "=" not in o:
            raise UsageError(f"override {o!r} is not KEY=VALUE")
        if key in ("out", "name"):
            raise UsageError(f"{key} is set by the studio (runs go into its runs folder)")
    return out


class Launcher:
    def __init__(self, root: Path, python: str = sys.executable):
        self.root = Path(root).resolve()
        self.python = python
        self.launches: list[Launch] = []
        self._lock = threading.Lock()

    def _spawn(self, args: list[str], what: str) -> Launch:
        log_dir = self.root / LOG_DIR
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{len(self.launches)}.log"
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])  # the folder holding this ganforge package
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        with open(log, "wb") as f:
            proc = subprocess.Popen([self.python, "-m", "ganforge", *args], stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=str(self.root),
                                    start_new_session=True)  # Ctrl-C in the studio's terminal stays there
        launch = Launch(proc, log, what)
        with self._lock:
            self.launches.append(launch)
        return launch

    def start(self, preset: str, overrides) -> Launch:
        """Validate the config here (a one-line error), then start the run."""
        from ..config import PRESETS, resolve
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        overrides = _check_overrides(overrides) + [f"out={self.root}", "train.progress=false"]
        resolve(preset, None, overrides)  # raises ConfigError on a bad key or value
        args = ["train", preset] + [a for o in overrides for a in ("--set", o)]
        return self._spawn(args, f"train {preset}")

    def resume(self, run: Path, overrides) -> Launch:
        if self.alive_run(run) is not None:
            raise UsageError(f"{run.name} is already running")
        overrides = _check_overrides(overrides)
        args = ["train", "--resume", str(run)] + [a for o in overrides for a in ("--set", o)]
        launch = self._spawn(args, f"resume {run.name}")
        launch.run = run.resolve()
        return launch

    def alive(self) -> list[Launch]:
        return [la for la in self.launches if la.proc.poll() is None]

    def alive_run(self, run: Path) -> Launch | None:
        run = run.resolve()
        for la in self.alive():
            if la.find_run() == run:
                return la
        return None

    def alive_ids(self) -> set[str]:
        out = set()
        for la in self.alive():
            r = la.find_run()
            if r is not None and (r == self.root or self.root in r.parents):
                out.add(r.relative_to(self.root).as_posix())
        return out

    def stop(self, run: Path) -> Launch:
        """SIGINT to the run's process: it checkpoints, writes result.json and exits."""
        la = self.alive_run(run)
        if la is None:
            raise UsageError(f"{run.name} is not running from this studio (only runs started here can be stopped)")
        la.proc.send_signal(signal.SIGINT)
        return la

    def stop_all(self, timeout: float = 30.0) -> None:
        """Interrupt every run still going (at studio exit), then wait for their checkpoints."""
        alive = self.alive()
        for la in alive:
            la.proc.send_signal(signal.SIGINT)
        deadline = time.time() + timeout
        for la in alive:
            try:
                la.proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                la.proc.kill()
                la.proc.wait()

    def describe(self) -> list[dict]:
        out = []
        for la in self.launches[-20:]:
            r = la.find_run()
            code = la.proc.poll()
            out.append({"pid": la.proc.pid, "what": la.what, "running": code is None, "exit_code": code,
                        "run": r.relative_to(self.root).as_posix() if r and self.root in r.parents else None,
                        "started": la.started, "log_tail": la.tail()})
        return out


__all__ = ["Launcher", "Launch", "LOG_DIR"]
