"""Real faults, not simulated ones: a small tmpfs that fills up while a run writes its
checkpoints, pictures and metrics; a read-only run folder; an output path that is a file; a run
name too long for the file system. Each ends in one line naming the path and what to do (exit
status 2), or in a warning when only one periodic write is lost, and never leaves a half-written
file under its real name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ganforge.checkpoint import list_checkpoints
from ganforge.cli import main
from ganforge.rundir import read_metrics

from conftest import TINY_TOY
from faults import fill, free_all, half_written, read_only, small_disk


def _train_args(out: Path, *extra: str) -> list[str]:
    args = ["train", "vanilla"]
    for o in (*TINY_TOY, "train.steps=6", "train.ckpt_every=2", "train.sample_every=2", "train.log_every=2",
              f"out={out}", *extra):
        args += ["--set", o]
    return args


@pytest.fixture
def disk(tmp_path):
    with small_disk(tmp_path / "disk") as d:
        yield d


def _errors(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_full_disk_costs_periodic_writes_and_the_final_one_says_how_to_resume(disk, capsys, one_thread):
    fill(disk, 160 << 10)  # room for the run folder and one checkpoint (about 96 kB), not two
    assert main(_train_args(disk / "runs")) == 2
    err = capsys.readouterr().err
    (run,) = (disk / "runs").iterdir()
    assert "warning: checkpoint at step 4 not written (No space left on device); the run goes on" in err
    (line,) = _errors(err)
    assert line.startswith(f"error: {run}: the final checkpoint of step 6 could not be written "
                           f"(No space left on device)")
    assert line.endswith(f"free some space and resume with `ganforge train --resume {run}`")
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["ckpt-0000002"]
    assert half_written(disk) == []
    # with room again, the resume command of the message finishes the run; each step is logged once
    free_all(disk)
    assert main(["train", "--resume", str(run)]) == 0
    assert [m["step"] for m in read_metrics(run) if "loss/D" in m] == [2, 4, 6]
    assert json.loads((run / "result.json").read_text())["step"] == 6
    assert half_written(disk) == []


@pytest.mark.parametrize("leave_kb", [1, 6, 14, 30, 60, 110, 200, 300])
def test_a_disk_filling_at_any_point_leaves_only_whole_files(disk, capsys, one_thread, leave_kb):
    fill(disk, leave_kb << 10)
    rc = main(_train_args(disk / "runs"))
    err = capsys.readouterr().err
    errors = _errors(err)
    assert rc in (0, 2) and len(errors) == (rc == 2)
    if errors:  # one line that names the path and what to do
        assert re.match(rf"error: {re.escape(str(disk))}\S*: .*(free some space|choose)", errors[0]), errors[0]
    assert half_written(disk) == []


def test_resume_on_a_full_disk_is_one_line(disk, capsys, one_thread):
    assert main(_train_args(disk / "runs", "train.sample_every=0")) == 0
    (run,) = (disk / "runs").iterdir()
    fill(disk, 0)
    assert main(["train", "--resume", str(run), "--set", "train.steps=8"]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert line == f"error: {run}/config.yaml: No space left on device; free some space and try again"
    assert half_written(disk) == []
    free_all(disk)
    assert main(["train", "--resume", str(run), "--set", "train.steps=8"]) == 0
    assert [m["step"] for m in read_metrics(run) if "loss/D" in m] == [2, 4, 6, 8]


def test_resume_of_a_read_only_run_folder_is_one_line(train_tiny, capsys):
    run = train_tiny("train.ckpt_every=2")
    with read_only(run):
        assert main(["train", "--resume", str(run), "--set", "train.steps=8"]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert line == (f"error: {run}: Read-only file system; resuming a run needs a writable folder: "
                    f"make it writable or choose another one")


def test_eval_of_a_read_only_run_folder_is_one_line_before_any_work(train_tiny, capsys, tmp_path):
    run = train_tiny()
    with read_only(run):
        assert main(["eval", str(run), "--n", "64"]) == 2
        (line,) = _errors(capsys.readouterr().err)
        assert line.startswith(f"error: {run}: Read-only file system; ganforge eval")
        assert "give --out" in line
        # an --out elsewhere is fine: eval only reads the run folder
        assert main(["eval", str(run), "--n", "64", "--out", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["results"]


def test_an_out_path_that_is_a_file_is_one_line(tmp_path, capsys, one_thread):
    f = tmp_path / "runs"
    f.write_text("not a folder")
    assert main(_train_args(f)) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert line == f"error: {f}: is a file, not a folder; choose another `out` folder for the runs"
    # and an output folder below a file
    assert main(_train_args(f / "sub")) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert line.startswith(f"error: {f}") and "a file stands where a folder is needed" in line


def test_a_run_name_too_long_for_the_file_system_is_one_line(tmp_path, capsys, one_thread):
    assert main(_train_args(tmp_path / "runs", "name=" + "n" * 300)) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert line.startswith(f"error: {tmp_path / 'runs'}/00000-nnn") and line.endswith(
        "File name too long; choose a shorter name")
    assert list((tmp_path / "runs").iterdir()) == []


def test_sample_into_a_file_or_a_read_only_folder_is_one_line(train_tiny, tmp_path, capsys):
    run = train_tiny()
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert main(["sample", str(run), "--out", str(blocker / "s.png")]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert line == f"error: {blocker}: is a file, not a folder; choose another output folder for ganforge sample"
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        assert main(["sample", str(run), "--out", str(ro / "s.png")]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert line.startswith(f"error: {ro}: Read-only file system; ganforge sample needs a writable folder")


def test_a_metrics_line_that_does_not_fit_is_cut_back_whole(tmp_path, capsys):
    """RLIMIT_FSIZE makes the kernel write part of a line and then refuse the rest (EFBIG)."""
    import resource
    import signal

    from ganforge.reporting import MetricsLog
    log = MetricsLog(tmp_path, tensorboard=False)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, old_limit[1]))
        for step in range(1, 11):
            log.write(step, {"loss/D": 0.5, "pad": "x" * 150})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    log.write(11, {"loss/D": 0.25})  # room again: logging goes on
    log.close()
    text = (tmp_path / "metrics.jsonl").read_text()
    steps = [json.loads(line)["step"] for line in text.splitlines()]
    assert text.endswith("\n") and steps == [1, 2, 3, 4, 5, 11] and len(text) - len(text.splitlines()[-1]) <= 1000
    err = capsys.readouterr().err
    assert "warning: metrics of step 6 not logged (File too large)" in err
