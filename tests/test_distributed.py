"""Data-parallel training: torchrun's environment is checked, the nets' views route calls, and
two gloo processes on the CPU train exactly what one process trains with the same global batch;
they stay in sync with a gradient penalty, stop together, and resume exactly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as tdist
from torch import nn

from ganforge.checkpoint import latest_checkpoint, load_checkpoint
from ganforge.config import ConfigError, resolve
from ganforge.distributed import Dist, LaunchError, NetView, check_launch, read_env
from ganforge.reporting import Reporter
from ganforge.loop import build_state, train_step

from conftest import TINY_TOY

# Tiny MLP nets without batch norm (BN normalises each process's slice by its own statistics,
# so only nets that treat samples independently can match one process exactly).
DDP_TOY = [*TINY_TOY, "model.g.norm=none", "train.batch_size=32", "train.steps=6", "train.log_every=2"]
GP = ["model.d.hidden=16", "train.n_critic=2", "train.steps=4"]  # with preset wgan-gp (mlp nets from TINY_TOY)
RESUME = ["train.ema=0.9", "train.n_critic=2", "loss.penalties={gp: 1.0}", "train.deterministic=true"]

needs_gloo = pytest.mark.skipif(not (tdist.is_available() and tdist.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")


def _cfg(out: Path, *extra: str, preset: str = "vanilla"):
    return resolve(preset, overrides=[*DDP_TOY, f"out={out}", *extra])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    worst = 0.0
    for net in a:
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            worst = max(worst, (a[net][k].double() - b[net][k].double()).abs().max().item())
    return worst


def _plain_nets(state) -> dict:
    nets = {"G": state.G.state_dict(), "D": state.D.state_dict()}
    if state.G_ema is not None:
        nets["G_ema"] = state.G_ema.module.state_dict()
    return {n: {k: v.detach().clone() for k, v in sd.items()} for n, sd in nets.items()}


def _steps(cfg, steps: int, dist=None) -> dict:
    state = build_state(cfg, dist=dist)
    report = Reporter(reduce=state.dist.mean)
    for _ in range(steps):
        train_step(state, report)
    report.flush()
    return _plain_nets(state)


# -- launch checks and views (no processes) --------------------------------------------------

def test_outside_torchrun_is_one_process():
    assert read_env({}) is None
    assert read_env({"MASTER_ADDR": "x", "MASTER_PORT": "1"}) is None


GOOD = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


@pytest.mark.parametrize("change,message", [
    ({"MASTER_PORT": ""}, "MASTER_PORT not set"),
    ({"RANK": "", "LOCAL_RANK": ""}, "RANK, LOCAL_RANK not set"),
    ({"RANK": "2"}, "RANK=2 is outside 0..WORLD_SIZE-1=1"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
    ({"LOCAL_RANK": "3"}, "LOCAL_RANK=3 .* inconsistent"),
    ({"LOCAL_WORLD_SIZE": "4"}, "inconsistent"),
    ({"WORLD_SIZE": "0"}, "must be >= 1"),
])
def test_inconsistent_torchrun_variables_are_one_line_errors(change, message):
    assert read_env(GOOD) == (1, 1, 2)
    with pytest.raises(LaunchError, match=message) as e:
        read_env({**GOOD, **change})
    assert "torchrun" in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, ConfigError)  # the CLI prints it as `error: ...`, exit status 2


def test_global_batch_must_divide_by_the_processes(tmp_path):
    cfg = _cfg(tmp_path, "train.batch_size=30")
    check_launch(cfg, 2, torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"train.batch_size=30 is the global batch .* 4 processes; use e.g. 28 or 32"):
        check_launch(cfg, 4, torch.device("cpu"))


def test_sync_bn_is_refused_on_the_cpu(tmp_path):
    from ganforge.session import train
    cfg = _cfg(tmp_path, "train.sync_bn=true")
    with pytest.raises(ConfigError, match="train.sync_bn needs CUDA"):
        check_launch(cfg, 2, torch.device("cpu"))
    with pytest.raises(ConfigError, match="train.sync_bn needs CUDA"):
        train(cfg, quiet=True)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # refused before a run folder exists


def test_shard_takes_this_process_rows():
    x, y = torch.arange(12).view(6, 2), torch.arange(6)
    for rank in range(3):
        xs, ys, none = Dist(rank=rank, world_size=3).shard((x, y, None))
        assert torch.equal(xs, x[2 * rank:2 * rank + 2]) and torch.equal(ys, y[2 * rank:2 * rank + 2])
        assert none is None
    assert Dist().shard((x, None))[0] is not None and torch.equal(Dist().shard((x, None))[0], x)


class _Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.ab, self.ba = nn.Linear(2, 2), nn.Linear(2, 3)
        self.size = 7

    def forward(self, x):
        return self.ab(x)


def test_view_routes_calls_of_the_net_and_its_parts_through_the_runner():
    from ganforge.distributed import _Route
    net = _Two()
    calls = []
    route = _Route(net)

    def runner(*args, **kwargs):
        calls.append(kwargs.get("_part", ""))
        return route(*args, **kwargs)

    view = NetView(net, runner)
    x = torch.randn(4, 2)
    assert torch.equal(view(x), net(x)) and torch.equal(view.ba(x), net.ba(x))
    assert calls == ["", "ba"]
    assert view.size == 7 and list(view.ab.parameters()) == list(net.ab.parameters())  # plain attributes
    assert list(view.parameters()) == list(net.parameters())


# -- two gloo processes --------------------------------------------------------------------------

def _worker(rank: int, world: int, port: int, out: str) -> None:
    """One of two processes: joins a gloo group and runs the scenarios of the tests below."""
    import ganforge.loop as L
    import ganforge.session as T
    from ganforge.distributed import launch
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    out = Path(out)
    tdist.init_process_group("gloo")  # launch() joins this group instead of making one per scenario
    try:
        for name, cfg, steps in (("equal", _cfg(out / "runs"), 6),
                                 ("gp", _cfg(out / "runs", *GP, preset="wgan-gp"), 4)):
            with launch(cfg, torch.device("cpu")) as dist:
                torch.save(_steps(cfg, steps, dist), out / f"{name}-{rank}.pt")
        # a SIGTERM in process 1 only: both processes stop at the same step, process 0 checkpoints
        step_fn = L.train_step

        def signalling_step(state, report):
            step_fn(state, report)
            if rank == 1 and state.step == 7:
                os.kill(os.getpid(), signal.SIGTERM)
        L.train_step = signalling_step
        try:
            run = T.train(_cfg(out / "stop", "train.steps=1000", "train.log_every=5"), quiet=True)
        except T.TrainingInterrupted as e:
            run = e.run_dir
        (out / f"stop-{rank}.json").write_text(json.dumps({"run": str(run)}))
    finally:
        tdist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return out


@needs_gloo
def test_two_processes_equal_one_process_with_the_same_global_batch(two_processes, tmp_path, one_thread, capsys):
    ranks = [torch.load(two_processes / f"equal-{r}.pt", weights_only=True) for r in (0, 1)]
    assert _max_diff(ranks[0], ranks[1]) == 0.0  # DDP keeps the processes' weights identical
    single = _steps(_cfg(tmp_path), 6)
    diff = _max_diff(ranks[0], single)
    start = _plain_nets(build_state(_cfg(tmp_path)))
    moved = _max_diff(start, single)
    with capsys.disabled():
        print(f"\n2 gloo processes vs 1 process, 6 steps, global batch 32: max |dW| = {diff:.3g} "
              f"(weights moved by up to {moved:.3g})")
    assert diff < 1e-5
    assert moved > 1e-3  # the comparison is not vacuous


@needs_gloo
def test_gradient_penalty_under_ddp_equals_one_process(two_processes, tmp_path, one_thread, capsys):
    """GP's double backward works through DDP, and its interpolation coefficients are drawn for
    the global batch and sliced, so two processes compute what one does."""
    ranks = [torch.load(two_processes / f"gp-{r}.pt", weights_only=True) for r in (0, 1)]
    assert all(torch.isfinite(v).all() for sd in ranks[0].values() for v in sd.values())
    assert _max_diff(ranks[0], ranks[1]) == 0.0
    single = _steps(_cfg(tmp_path, *GP, preset="wgan-gp"), 4)
    diff = _max_diff(ranks[0], single)
    with capsys.disabled():
        print(f"\nwgan-gp, 2 processes vs 1 process: max |dW| = {diff:.3g}")
    assert diff < 1e-5


@needs_gloo
def test_a_signal_in_one_process_stops_all_at_the_same_step(two_processes):
    runs = [json.loads((two_processes / f"stop-{r}.json").read_text())["run"] for r in (0, 1)]
    assert runs[0] == runs[1]  # the main process's run folder, shared with the other
    run = Path(runs[0])
    result = json.loads((run / "result.json").read_text())
    assert result["reason"] == "interrupted" and result["step"] == 10  # the next agreement after step 7
    assert latest_checkpoint(run / "checkpoints").name == "ckpt-0000010"
    assert len(list((run.parent).iterdir())) == 1  # one run folder, written by process 0 only


# -- through torchrun and the CLI: a run, and resume ------------------------------------------------

def _torchrun(out: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "ganforge", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _sets(*overrides: str) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def _final(run: Path) -> dict:
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))[0]


@needs_gloo
def test_torchrun_run_and_resume(tmp_path, one_thread, capsys):
    from ganforge.session import train
    full = tmp_path / "full"
    proc = _torchrun(tmp_path, "vanilla", *_sets(*DDP_TOY, *RESUME, f"out={full}"))
    assert proc.stdout.count("run folder:") == 1 and "x 2 processes" in proc.stdout  # process 0 speaks
    (full_run,) = full.iterdir()
    assert json.loads((full_run / "result.json").read_text())["step"] == 6

    half = tmp_path / "half"
    _torchrun(tmp_path, "vanilla", *_sets(*DDP_TOY, *RESUME, "train.steps=3", f"out={half}"))
    (half_run,) = half.iterdir()
    _torchrun(tmp_path, "--resume", str(half_run), *_sets("train.steps=6"))
    assert json.loads((half_run / "result.json").read_text())["step"] == 6
    resumed = _max_diff(_final(full_run), _final(half_run))

    single = train(_cfg(tmp_path / "one", *RESUME), quiet=True)
    vs_one = _max_diff(_final(full_run), _final(single))
    with capsys.disabled():
        print(f"\ntorchrun 2 processes: resumed vs uninterrupted max |dW| = {resumed:.3g}; "
              f"vs 1 process (gp, n_critic 2, EMA) {vs_one:.3g}")
    assert resumed == 0.0
