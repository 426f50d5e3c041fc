"""The benchmarks under benchmarks/ (outside the installed package): each stops on the first
Ctrl-C / SIGTERM (exit 130, one line, its children gone), prints the commit it measures, writes
its table and JSON; and nothing of them is left inside ``ganforge``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ganforge
import ganforge.data.images as gi
from benchmarks import common, toy

ROOT = Path(common.__file__).resolve().parents[1]
TINY = ["model.arch=mlp", "model.z_dim=4", "model.g.hidden=16", "model.d.hidden=16", "train.batch_size=32",
        "train.device=cpu", "train.threads=1"]
MODULES = ["toy", "quality", "speed", "floor", "stacked", "conditional", "i2i", "reliability", "soak", "finetune",
           "semi", "stargan", "sequence", "precision", "feedback"]


def _bench(module: str, *args: str, log: Path) -> subprocess.Popen:
    """``python -m benchmarks.MODULE ARGS`` from the repository root, with this ganforge."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), str(Path(ganforge.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-m", f"benchmarks.{module}", *args], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.PIPE, text=True)


def _wait_for(pred, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"the benchmark ended (exit {proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.1)


def _stop_and_time(proc: subprocess.Popen, sig: int, limit: float = 10.0) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"still running {limit:g} s after {signal.Signals(sig).name}") from None
    return time.perf_counter() - t0, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_toy_benchmark_stops_on_the_first_signal(tmp_path, sig):
    """The training loop takes the signal (checkpoint, stop, return normally); the benchmark must
    not go on to its next run (it used to: only kill -9 stopped it)."""
    out = tmp_path / "runs"
    proc = _bench("toy", "--presets", "vanilla", "--datasets", "ring8", "--seeds", "0,1,2", "--steps", "1000000",
                  "--threads", "1", "--out", str(out), *[a for o in TINY for a in ("--set", o)],
                  log=tmp_path / "stdout")
    _wait_for(lambda: any(out.glob("*/metrics.jsonl")), proc, "training run")
    time.sleep(0.5)  # inside the training loop
    seconds, err = _stop_and_time(proc, sig)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("stopped by ") and "Traceback" not in err, err
    (run,) = out.iterdir()  # no second seed was started
    assert json.loads((run / "result.json").read_text())["reason"] == "interrupted"
    assert "commit: " in (tmp_path / "stdout").read_text()


def _children_of(marker: str) -> list[int]:
    """Pids of `ganforge train` processes whose command line mentions ``marker``."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if marker in cmd and "ganforge train" in cmd:
            pids.append(int(d.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_soak_benchmark_stops_and_takes_its_training_child_with_it(tmp_path):
    out = tmp_path / "soak"
    proc = _bench("soak", "--presets", "vanilla", "--minutes", "5", "--out", str(out),
                  *[a for o in TINY + ["data.name=ring8"] for a in ("--set", o)], log=tmp_path / "stdout")
    _wait_for(lambda: any(out.glob("*/*/metrics.jsonl")), proc, "training child")
    (child,) = _children_of(str(out))
    seconds, err = _stop_and_time(proc, signal.SIGTERM)
    assert proc.returncode == 130 and "stopped by SIGTERM" in err, err
    deadline = time.time() + 5
    while time.time() < deadline and _children_of(str(out)):
        time.sleep(0.1)
    assert not _children_of(str(out)), f"training child {child} outlived the benchmark"


def test_toy_benchmark_prints_the_commit_and_writes_table_and_json(tmp_path, capsys, restore_signals):
    dest = tmp_path / "toy.json"
    argv = ["--presets", "vanilla", "--datasets", "ring8", "--seeds", "0,1", "--steps", "20", "--threads", "1",
            "--out", str(tmp_path / "runs"), "--json", str(dest), *[a for o in TINY for a in ("--set", o)]]
    with pytest.raises(SystemExit) as e:
        common.cli(toy.parser, toy.main, argv)
    assert e.value.code == 0
    out = capsys.readouterr().out
    commit = common.git_commit()
    assert f"commit: {commit}\n" in out and re.fullmatch(r"[0-9a-f]{4,}(\+dirty)?", commit), commit
    assert "| ring8 | vanilla | 20 |" in out and out.rstrip().endswith("| 0,1 |")
    doc = json.loads(dest.read_text())
    assert doc["commit"] == commit and [r["seed"] for r in doc["rows"]] == [0, 1]
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_git_commit_names_the_commit_and_a_dirty_tree(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    if subprocess.run(git + ["init", "-q"], capture_output=True).returncode != 0:
        pytest.skip("git not available")
    assert common.git_commit(tmp_path).startswith("unknown")  # no commit yet
    (tmp_path / "a.txt").write_text("1\n")
    subprocess.run(git + ["add", "a.txt"], check=True)
    subprocess.run(git + ["commit", "-qm", "a"], check=True)
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert common.git_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("2\n")
    assert common.git_commit(tmp_path) == head + "+dirty"


def test_the_environment_line_names_the_cpu_and_its_kernels():
    line = common.environment()
    model = common.cpu_model()
    assert line.endswith(model) and f"threads {torch.get_num_threads()}" in line
    assert torch.backends.cpu.get_cpu_capability() in model and model.endswith(f", {os.cpu_count()} CPUs")
    if Path("/proc/cpuinfo").exists():  # Linux: the model name, not just the architecture
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]
        assert not names or model.startswith(names[0])


def test_machine_speed_is_a_rate_that_follows_the_work_done(one_thread, monkeypatch):
    """The reference rate is steps per CPU-second of its fixed workload, leaves the global RNG alone,
    and halves when each step costs twice the CPU time (a slower machine)."""
    rng = torch.get_rng_state()
    fast = common.machine_speed(0.3)
    assert torch.equal(torch.get_rng_state(), rng)
    assert 0 < fast < 10_000
    real_clock = time.process_time
    monkeypatch.setattr(common.time, "process_time", lambda: 2 * real_clock())  # every CPU-second counts double
    slow = common.machine_speed(0.6)
    assert 0.25 < slow / fast < 0.85


@pytest.mark.skipif(not (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_precision_benchmark_times_the_four_configurations(one_thread, monkeypatch, capsys):
    """Tiny dcgan, short blocks: one row with a positive median rate per configuration (each from
    its own state, which really ran in that precision and layout) and their ratio."""
    from benchmarks import precision
    from ganforge import runtime
    monkeypatch.setattr(runtime, "cpu_native_bf16", lambda: True)  # bf16 is emulated where the CPU lacks it
    seen = {}
    real_rate = precision.steps_per_cpu_second

    def rate(state, rep, seconds):
        conv = next(p for p in state.D.parameters() if p.dim() == 4 and p.shape[1] > 1)  # (1-channel ones are both)
        seen[(state.cfg.train.amp, state.cfg.train.channels_last)] = conv.is_contiguous(memory_format=torch.channels_last)
        return real_rate(state, rep, seconds)

    monkeypatch.setattr(precision, "steps_per_cpu_second", rate)
    (row,) = precision.precision_speed(["dcgan"], repeats=2, block_s=0.1,
                                       extra=["model.g.width=8", "model.d.width=8", "train.batch_size=8"])
    assert seen == {("off", "off"): False, ("off", "on"): True, ("bf16", "off"): False, ("bf16", "on"): True}
    assert all(len(v) == 2 and min(v) > 0 for v in row["rates"].values())
    assert row["ratio"] == pytest.approx(row["bf16 + NHWC"] / row["fp32"])
    assert "| dcgan | cpu |" in precision.table([row])


@pytest.mark.parametrize("name", MODULES)
def test_every_benchmark_has_its_own_help(name, capsys):
    import importlib
    mod = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as e:
        mod.parser.parse_args(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python -m benchmarks.{name}") and "--seeds" in text and "--json" in text
    with pytest.raises(SystemExit) as e:
        mod.parser.parse_args(["--seeds", "0,x"])
    assert e.value.code == 2 and "comma-separated integers" in capsys.readouterr().err


def test_the_benchmarks_only_import_ganforge_through_common():
    for path in (ROOT / "benchmarks").glob("*.py"):
        if path.name != "common.py":
            assert "ganforge" not in "".join(ln for ln in path.read_text().splitlines(True)
                                              if ln.lstrip().startswith(("import ", "from "))), path


def test_the_installed_package_holds_no_benchmark_code():
    import importlib.util
    for name in ("ganforge.bench", "ganforge.bench_models", "ganforge.benchmarks"):
        assert importlib.util.find_spec(name) is None, name
    pkg = Path(ganforge.__file__).parent
    files = sorted(pkg.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        text = path.read_text()
        for needle in ("bench_models", "import bench", "benchmarks", "__reduce__", "PWNED", "plant_pickle",
                       "os.system", "reliability payload"):
            assert needle not in text, f"{path.relative_to(pkg)} mentions {needle!r}"
    res = subprocess.run([sys.executable, "-m", "ganforge", "bench", "toy"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(pkg.parent)), timeout=120)
    assert res.returncode == 2 and "invalid choice: 'bench'" in res.stderr


def test_the_toy_protocol_keeps_the_published_critic_steps_on_a_cpu():
    """The 2-D protocol is the presets' published settings on MLP nets: the image-sized CPU size
    (wgan-gp with 1 critic step) must not change it."""
    from benchmarks.toy import TOY_COMMON, TOY_PRESET

    from ganforge.config import resolve

    cfg = resolve("wgan-gp", overrides=[*TOY_COMMON, *TOY_PRESET["wgan-gp"], "data.name=grid25", "train.device=cpu"])
    assert cfg.train.n_critic == 5 and cfg.model.size == "paper"


def test_feedback_benchmark_times_a_mistake_and_checks_its_one_line_answer(tmp_path):
    from benchmarks.feedback import feedback_cases, feedback_table, time_case
    cases = {c["case"]: c for c in feedback_cases(tmp_path)}
    row = time_case(cases["missing run folder (eval)"], repeats=2)
    assert row["ok"] and row["exit"] == 2 and row["repeats"] == 2
    assert row["first_line"] == f"error: run folder not found: {tmp_path / 'no-such-run'}"
    assert 0 < row["median_s"] <= row["max_s"] < 60
    wrong = time_case({**cases["unknown preset"], "expect": 0}, repeats=1)  # a case that answers otherwise
    assert not wrong["ok"] and wrong["exit"] == 2
    assert "(unexpected)" in feedback_table([row, wrong]).splitlines()[-1]
