"""The command line, called in-process through ``ganforge.cli.main`` (plus one real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from conftest import TINY_TOY
from ganforge.cli import main
from ganforge.config import PRESETS
from ganforge.losses import LOSSES
from ganforge.rundir import read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def _sets(*overrides: str) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def cli_run(runs_dir, capsys):
    """Train a tiny toy run through the CLI and return its folder."""

    def run(*overrides: str) -> Path:
        rc = main(["train", "vanilla", *_sets(*TINY_TOY, f"out={runs_dir}", *overrides)])
        out = capsys.readouterr().out
        assert rc == 0
        (folder,) = [Path(line.split(": ", 1)[1]) for line in out.splitlines() if line.startswith("run folder: ")]
        return folder

    return run


def test_presets_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line and not line[0].isspace()]
    assert [line.split()[0] for line in lines[:-1]] == list(PRESETS)
    assert sum("(default)" in line for line in lines) == 1
    assert lines[-1].startswith("model.size=auto")


def test_presets_in_a_real_subprocess():
    exe = Path(sys.executable).with_name("ganforge")
    cmd = [str(exe), "presets"] if exe.exists() else [sys.executable, "-m", "ganforge", "presets"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert p.returncode == 0, p.stderr
    names = [line.split()[0] for line in p.stdout.splitlines() if line and not line[0].isspace()]
    assert names[:-1] == list(PRESETS)
    assert "sizes: cpu: model.g.width=32, model.d.width=32; paper: as the preset" in p.stdout


def test_list_losses(capsys):
    assert main(["list", "losses"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "losses:"
    assert [line.split()[0] for line in lines[1:]] == LOSSES.keys()
    assert "datasets:" not in out and "penalties:" not in out


def test_list_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for title in ("losses:", "penalties:", "nets:", "inits:", "optimizers:", "datasets:"):
        assert title in out
    assert "ring8" in out and "folder:PATH" in out


def test_list_datasets_names_each_schemes_argument(capsys):
    assert main(["list", "datasets"]) == 0
    shown = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert "semi:NAME" in shown and "semi:PATH" not in shown  # semi takes a dataset name, not a path
    assert "folder:PATH" in shown and "fashion-mnist" in shown


def test_dry_run_prints_the_resolved_yaml(capsys, runs_dir):
    rc = main(["train", "wgan-gp", "--dry-run", *_sets("train.steps=7", "optim.betas=[0.1, 0.2]", f"out={runs_dir}")])
    out = capsys.readouterr().out
    assert rc == 0
    d = yaml.safe_load(out)
    assert d["preset"] == "wgan-gp"
    assert d["train"]["steps"] == 7
    assert d["optim"]["betas"] == [0.1, 0.2]
    assert d["loss"]["penalties"] == {"gp": 10.0}
    assert d["out"] == str(runs_dir)
    assert not runs_dir.exists()  # nothing was created
    assert "run folder" not in out


def test_dry_run_with_a_config_file(capsys, tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: hinge\ntrain:\n  steps: 33\n")
    assert main(["train", "--config", str(f), "--dry-run", "--set", "train.batch_size=8"]) == 0
    d = yaml.safe_load(capsys.readouterr().out)
    assert (d["preset"], d["loss"]["name"], d["train"]["steps"], d["train"]["batch_size"]) == ("hinge", "hinge", 33, 8)


def test_typo_gives_exit_2_and_a_one_line_suggestion(capsys):
    rc = main(["train", "vanilla", "--dry-run", "--set", "optim.lr_dd=1"])
    captured = capsys.readouterr()
    assert rc == 2
    line = _one_line_error(captured.err)
    assert "optim.lr_dd" in line and "did you mean 'lr_d'" in line
    assert captured.out == ""


@pytest.mark.parametrize("args, needle", [
    (["train", "nope"], "unknown preset"),
    (["train", "vanilla", "--set", "train.steps=-1"], "train.steps"),
    (["train", "vanilla", "--set", "model.arch=dcgann"], "did you mean 'dcgan'"),
    (["train", "vanilla", "--set", "train.steps"], "key.sub=value"),
])
def test_user_errors_are_one_line(capsys, args, needle):
    assert main(args) == 2
    assert needle in _one_line_error(capsys.readouterr().err)


def test_train_then_sample_writes_a_png(cli_run, capsys, tmp_path):
    run = cli_run("train.steps=3")
    assert (run / "checkpoints" / "ckpt-0000003").is_dir()
    out = tmp_path / "x.png"
    assert main(["sample", str(run), "--n", "16", "--seed", "0", "--out", str(out)]) == 0
    assert "16 samples" in capsys.readouterr().out
    with Image.open(out) as im:
        im.verify()
    # the same seed writes the same picture
    again = tmp_path / "y.png"
    assert main(["sample", str(run), "--n", "16", "--seed", "0", "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_sample_an_image_run_writes_a_grid(runs_dir, image_dataset, capsys, tmp_path):
    name = image_dataset((1, 28, 28))
    rc = main(["train", "dcgan", *_sets(*TINY_TOY, f"out={runs_dir}", f"data.name={name}", "model.arch=dcgan",
                                        "model.g={width: 8}", "model.d={width: 8}", "train.steps=1",
                                        "train.batch_size=4", "train.grid_size=4")])
    assert rc == 0, capsys.readouterr().err
    (run,) = runs_dir.iterdir()
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "--n", "6", "--nrow", "3", "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.size == (3 * 30 + 2, 2 * 30 + 2)  # 3 columns x 2 rows of 28 px, 2 px padding
    sep = tmp_path / "sep"
    assert main(["sample", str(run), "--n", "3", "--separate", "--out", str(sep)]) == 0
    assert sorted(p.name for p in sep.iterdir()) == ["00000.png", "00001.png", "00002.png"]


def test_sample_on_a_folder_that_is_not_a_run(capsys, tmp_path):
    (tmp_path / "junk").mkdir()
    assert main(["sample", str(tmp_path / "junk"), "--out", str(tmp_path / "x.png")]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "not a ganforge run folder" in line
    assert main(["sample", str(tmp_path / "missing")]) == 2
    assert "not found" in _one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv", [["eval", "{missing}"], ["sample", "{missing}"], ["train", "--resume", "{missing}"],
                                  ["export", "{missing}", "-o", "{tmp}/g.onnx"]])
def test_a_missing_run_folder_is_one_error_before_torch_is_imported_and_is_not_created(tmp_path, argv):
    """A mistyped run folder is answered at once (no torch import) and left uncreated (eval used to
    make the folder it was going to write its JSON into, then fail)."""
    missing = tmp_path / "no-such-run"
    argv = [a.format(missing=missing, tmp=tmp_path) for a in argv]
    code = ("import sys, ganforge.cli as c\n"
            f"rc = c.main({argv!r})\n"
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "False"], out.stderr
    assert _one_line_error(out.stderr) == f"error: run folder not found: {missing}"
    assert not missing.exists() and list(tmp_path.iterdir()) == []


def test_sample_rejects_n_below_one(cli_run, capsys):
    run = cli_run("train.steps=1")
    assert main(["sample", str(run), "--n", "0"]) == 2
    assert "--n" in _one_line_error(capsys.readouterr().err)


def test_train_resume_continues_the_run(cli_run, capsys):
    run = cli_run("train.steps=3", "train.log_every=1")
    assert main(["train", "--resume", str(run), "--set", "train.steps=6"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "ckpt-0000003" in out
    assert json.loads((run / "result.json").read_text())["step"] == 6
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3, 4, 5, 6]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == 6
    assert (run / "checkpoints" / "ckpt-0000006").is_dir()
    assert len(list(run.parent.iterdir())) == 1  # the same folder, not a new run


def test_resume_refuses_a_preset(cli_run, capsys):
    run = cli_run("train.steps=1")
    assert main(["train", "hinge", "--resume", str(run)]) == 2
    assert "--resume" in _one_line_error(capsys.readouterr().err)


def test_resume_a_non_run_folder(capsys, tmp_path):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a ganforge run folder" in _one_line_error(capsys.readouterr().err)
