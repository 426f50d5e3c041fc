"""A training session: validate the config, set up the processes and the run folder, run the
loop (:mod:`ganforge.loop`), and record how it ended. ``train`` starts a run, ``resume`` continues one."""

from __future__ import annotations

import shutil
from pathlib import Path

from .atomic import os_error, remove_stale_files, write_json_atomic, write_text_atomic
from .checkpoint import newest_checkpoint, remove_stale, restore_run
from .config import Config, apply_override
from .distributed import launch
from .errors import CheckpointError, RunDirError
from .imagefiles import describe_skipped
from .loop import RunState, build_state, fit
from .nets import count_params
from .reporting import MetricsLog, NoLog
from .rundir import (CHECKPOINTS, CONFIG, METRICS, RUN_INFO, SAMPLES, check_run_dir, create_run_dir, read_run,
                     require_writable)
from .runtime import configure_torch, environment, pick_device
from .validation import validate

SKIPPED = "skipped.txt"  # files of an image folder that could not be read: "path<TAB>reason" lines


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C / SIGTERM after writing its final checkpoint; ``run_dir`` resumes it."""

    def __init__(self, run_dir: Path, step: int):
        super().__init__(f"interrupted at step {step}; resume with `ganforge train --resume {run_dir}`")
        self.run_dir, self.step = Path(run_dir), step


def new_run_dir(cfg: Config, state: RunState, run_dir: str | Path | None) -> Path:
    """Create and describe a run folder (the main process's work)."""
    run = Path(run_dir) if run_dir else create_run_dir(cfg.out, cfg.name or cfg.preset or "run")
    info = {"data_shape": list(state.data.shape), "task": state.task.name,
            "num_classes": state.data.num_classes, "data": state.data.description,
            "arch": cfg.model.arch, "g_args": state.g_args, "d_args": state.d_args,
            "params": {"G": count_params(state.G), "D": count_params(state.D)},
            "environment": environment(state.device, state.dist)}
    skipped = getattr(state.data, "skipped", None) or []  # image folders: files that could not be read
    if skipped:
        info["skipped_files"] = {"count": len(skipped), "list": SKIPPED}
    try:
        run.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run / CONFIG, cfg.to_yaml())
        if skipped:
            write_text_atomic(run / SKIPPED, "".join(f"{s.path}\t{s.reason}\n" for s in skipped))
        write_json_atomic(run / RUN_INFO, info)
    except OSError as e:  # a full or read-only disk: no half-made run folder is left behind
        if not run_dir:
            shutil.rmtree(run, ignore_errors=True)
        raise os_error(e, run, "a new run folder") from None
    return run


def _run(state: RunState, run: Path, quiet: bool, resume_step: int | None = None) -> Path:
    """Fit with the run's metrics log open, then record how the session ended."""
    try:
        log = MetricsLog(run, resume_step=resume_step) if state.dist.is_main else NoLog()
    except OSError as e:  # a full or read-only disk before the first step
        raise os_error(e, run / METRICS, "the metrics log") from None
    try:
        result = fit(state, run, log)
    finally:
        log.close()
    if state.dist.is_main:
        try:
            write_json_atomic(run / "result.json", result)
        except OSError as e:  # the checkpoint is complete; only the record of how the session ended is missing
            raise RunDirError(f"{run}/result.json: {e.strerror}; the final checkpoint is complete: free some space "
                              f"and resume with `ganforge train --resume {run}` to record the result") from None
    if not quiet:
        print(f"{result['reason']}: step {result['step']} in {result['seconds']:.0f}s; samples: {result['samples']}")
    if result["reason"] == "interrupted":
        raise TrainingInterrupted(run, result["step"])
    return run


def auto_speed_note(was: tuple, cfg) -> str:
    """What ``train.amp=auto`` / ``train.channels_last=auto`` turned on, for the run's first lines."""
    choices = (("bf16 autocast", "train.amp", was[0], cfg.train.amp, "bf16"),
               ("channels_last", "train.channels_last", was[1], cfg.train.channels_last, "on"))
    on = [(name, key) for name, key, before, now, fast in choices if before == "auto" and now == fast]
    if not on:
        return ""
    return (f", {' and '.join(n for n, _ in on)} (auto: this CPU has bf16 instructions; "
            f"{' / '.join(k + '=off' for _, k in on)} to turn off)")


def train(cfg: Config, *, run_dir: str | Path | None = None, quiet: bool = False) -> Path:
    """Train a new run from a config; returns the run folder.

    Raises :class:`TrainingInterrupted` (a KeyboardInterrupt) after the final checkpoint when
    stopped by Ctrl-C or SIGTERM. Under ``torchrun`` every process calls this: the main process
    creates the run folder and writes everything; all of them train their slices of each batch."""
    validate(cfg)
    configure_torch(cfg)
    size_was, speed_was = cfg.model.size, (cfg.train.amp, cfg.train.channels_last)
    with launch(cfg, pick_device(cfg.train.device)) as dist:
        state = build_state(cfg, dist=dist)  # settles model.size=auto for the device
        from .data import dataset
        if dataset(cfg.data.name).scheme and cfg.data.image_size == 0 and len(state.data.shape) == 3:
            cfg.data.image_size = int(state.data.shape[-1])  # record the size a folder was read at
        run = dist.from_main(lambda: new_run_dir(cfg, state, run_dir))
        quiet = quiet or not dist.is_main
        if not quiet:
            procs = f" x {dist.world_size} processes" if dist.active else ""
            print(f"run folder: {run}\ndata: {state.data.description}\n"
                  f"G {count_params(state.G):,} params, D {count_params(state.D):,} params, "
                  f"device {state.device}{procs}, model size {cfg.model.size}"
                  + (" (auto: the published size needs a CUDA GPU; model.size=paper to override)"
                     if size_was == "auto" and cfg.model.size == "cpu" else "")
                  + auto_speed_note(speed_was, cfg))
            lines = describe_skipped(getattr(state.data, "skipped", None) or [])
            if lines:
                print("\n".join(lines + [f"  (the full list: {run / SKIPPED})"]))
        return _run(state, run, quiet)


def _pick_checkpoint(run: Path) -> tuple[Path | None, str]:
    """(the newest checkpoint that verifies and parses, why there is none), after removing what
    writers killed mid-write left behind (temporary folders and files)."""
    remove_stale(run / CHECKPOINTS)
    for folder in (run, run / SAMPLES):
        remove_stale_files(folder)
    try:
        return newest_checkpoint(run / CHECKPOINTS, full=True), ""
    except CheckpointError as e:
        return None, str(e)


def resume(run_dir: str | Path, overrides: list[str] | tuple = (), *, quiet: bool = False) -> Path:
    """Continue a run from its newest good checkpoint (``overrides`` may extend train.steps).

    Under ``torchrun`` every process restores the checkpoint the main process picked (the run
    folder must be readable by every machine, e.g. on a shared file system)."""
    run = check_run_dir(run_dir)
    require_writable(run, "resuming a run")
    cfg_dict, _ = read_run(run)  # a damaged config.yaml / run.json is a RunDirError, not a traceback
    if not isinstance(cfg_dict, dict):
        raise RunDirError(f"{run}/{CONFIG} does not hold a config mapping")
    cfg = Config.from_dict(cfg_dict)
    for o in overrides:
        apply_override(cfg, o)
    validate(cfg)
    configure_torch(cfg)
    with launch(cfg, pick_device(cfg.train.device)) as dist:
        ckpt, why = dist.from_main(lambda: _pick_checkpoint(run))
        if ckpt is None:
            raise RunDirError(f"cannot resume {run}: {why}")
        state = build_state(cfg, dist=dist, fresh=False)
        restore_run(state, ckpt)
        if overrides and dist.is_main:
            try:
                write_text_atomic(run / CONFIG, cfg.to_yaml())
            except OSError as e:  # a full disk: the old config.yaml stays whole
                raise os_error(e, run / CONFIG, "resuming a run") from None
        quiet = quiet or not dist.is_main
        if not quiet:
            print(f"resuming {run} from {ckpt.name} (step {state.step} of {cfg.train.steps})")
        return _run(state, run, quiet, resume_step=state.step)


__all__ = ["TrainingInterrupted", "resume", "train"]
