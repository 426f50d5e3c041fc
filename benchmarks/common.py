"""What every benchmark shares: the ganforge names they use, options, the header, stopping, output.

This is the only module under ``benchmarks/`` that imports ganforge's internals; the benchmark
files take them from here (``from .common import train_step, ...``), so a renamed internal is
fixed in one place.

Stopping: :func:`cli` installs a SIGINT / SIGTERM handler that kills the benchmark's child
processes and raises :class:`Stopped` at once (exit 130, one line on stderr). A training run
started with :func:`train_run` installs ganforge's own handler for its duration (first signal =
checkpoint and stop); :func:`train_run` turns the run's "interrupted" ending into
:class:`Stopped` too, so the benchmark does not go on to its next run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

# -- ganforge internals used by the benchmarks (the one place to change when they move) ----------
from ganforge import __version__, load
from ganforge.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_run
from ganforge.config import resolve
from ganforge.data import Split, build_dataset, dataset, load_reference
from ganforge.data.images import load_split
from ganforge.data.pairs import load_config_pairs
from ganforge.data.stacked import stacked_modes
from ganforge.data.toy import MIXTURES
from ganforge.errors import UserError
from ganforge.evaluation import EvalContext, evaluate, parse_metrics, reference_features
from ganforge.features import FmnistNet, get_feature_extractor
from ganforge.loop import build_state, train_step
from ganforge.runtime import cpu_native_bf16
from ganforge.losses_ssl import ssl_supervised
from ganforge.metrics import fid_from_features
from ganforge.metrics.image import bicubic_upscale, psnr, ssim
from ganforge.metrics.modes import mode_metrics
from ganforge.model_folder import save_model_folder
from ganforge.metrics.timeseries import predictive_score
from ganforge.optim import optimizer_kernel
from ganforge.nets import sample_latent
from ganforge.perceptual import FeatureDistance
from ganforge.project import project
from ganforge.reporting import Reporter
from ganforge.rundir import read_metrics
from ganforge.session import new_run_dir, train
from ganforge.studio.demo import append_metrics, write_fake_run
from ganforge.tasks import TASKS
from ganforge.trained import TrainedGenerator
from ganforge.validation import validate

RESULT_FILE = "result.json"  # what a finished training session writes into its run folder (reason, step)

__all__ = [  # the ganforge names the benchmark files take from here
    "FeatureDistance", "FmnistNet", "MIXTURES", "Reporter", "TrainedGenerator", "append_metrics", "build_dataset",
    "cpu_native_bf16", "evaluate", "optimizer_kernel",
    "load_reference", "project", "validate", "write_fake_run", "bicubic_upscale", "build_state", "compute", "fid_from_features",
    "conditional_results", "evaluate_generator", "get_feature_extractor", "latest_checkpoint",
    "list_checkpoints", "load", "load_checkpoint", "load_config_pairs", "load_split", "mode_metrics",
    "parse_metrics", "psnr", "read_metrics", "reference_features", "resolve", "save_model_folder",
    "save_state_run", "seeded_sampler", "ssim", "ssl_supervised", "stacked_modes", "train", "train_step",
    "translation_results", "domain_results", "sequence_results",
]

ROOT = Path(__file__).resolve().parent.parent  # the repository root

# -- stopping on the first Ctrl-C / SIGTERM -------------------------------------------------------


class Stopped(KeyboardInterrupt):
    """The benchmark was asked to stop (a KeyboardInterrupt, so ``except Exception`` cannot eat it)."""


_stop: dict = {"why": None}  # set once a stop was requested; checked before any new child or run
_children: set = set()  # live child processes (Popen), killed when a stop is requested


def kill_children() -> None:
    """Kill every live child process (their work is abandoned)."""
    for proc in list(_children):
        if proc.poll() is None:
            proc.kill()


def request_stop(why: str) -> None:
    """Record a stop (the first reason wins) and kill the children."""
    _stop["why"] = _stop["why"] or why
    kill_children()


def check_stop() -> None:
    """Raise :class:`Stopped` if a stop was requested (between runs, before a child starts)."""
    if _stop["why"]:
        raise Stopped(_stop["why"])


def _on_signal(signum, frame) -> None:
    request_stop(signal.Signals(signum).name)
    raise Stopped(_stop["why"])


def install_stop() -> None:
    """From now on the first SIGINT or SIGTERM stops the benchmark (main thread only)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)


def train_run(cfg) -> Path:
    """``ganforge`` training of a resolved config (quiet); returns the run folder. Raises
    :class:`Stopped` when the run ended early because of a signal: the training loop's own
    handler takes the first Ctrl-C / SIGTERM (checkpoint and stop) and returns normally."""
    check_stop()
    run = train(cfg, quiet=True)
    result = run / RESULT_FILE
    if result.is_file() and json.loads(result.read_text()).get("reason") == "interrupted":
        request_stop(f"a signal during the training run {run}")
    check_stop()
    return run


# -- child processes (the real CLI) ----------------------------------------------------------------

def spawn(argv: list[str], **popen) -> subprocess.Popen:
    """Start a child process that a stop request kills; call :func:`reap` once it is done with."""
    check_stop()
    proc = subprocess.Popen(argv, **popen)
    _children.add(proc)
    return proc


def reap(proc: subprocess.Popen) -> None:
    """Forget a child that has ended (killing it first if it has not)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    _children.discard(proc)


def run_child(argv: list[str], timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    """Like ``subprocess.run(argv, capture_output=True, text=True)``, stoppable; with ``check`` a
    non-zero exit raises with the end of its stderr."""
    proc = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        reap(proc)
    check_stop()  # killed by a stop request: not a result
    res = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    if check and res.returncode != 0:
        raise RuntimeError(f"`{quote(argv)}` exited {res.returncode}:\n{res.stderr[-3000:]}")
    return res


def train_argv(preset: str | None, overrides) -> list[str]:
    """``ganforge train [PRESET] --set O ...`` as a child process's argv."""
    argv = [sys.executable, "-m", "ganforge", "train"] + ([preset] if preset else [])
    for o in overrides:
        argv += ["--set", o]
    return argv


def quote(argv) -> str:
    """A child's argv as the shell command a reader would type (``ganforge ...``)."""
    a = list(argv)
    if a[:3] == [sys.executable, "-m", "ganforge"]:
        a = ["ganforge"] + a[3:]
    return " ".join(shlex.quote(str(x)) for x in a)


def only_run(parent: Path) -> Path:
    """The single run folder ``ganforge train --set out=PARENT`` created."""
    runs = sorted(p for p in Path(parent).iterdir() if p.is_dir())
    if len(runs) != 1:
        raise RuntimeError(f"expected one run folder in {parent}, found {[p.name for p in runs]}")
    return runs[0]


# -- training to a CPU budget ----------------------------------------------------------------------

BUDGET_NOTE = "process CPU-minutes of training (evaluation excluded)"


def train_for_cpu(state, rep, seconds: float, spent: float = 0.0) -> float:
    """Train ``state`` until this process's CPU time spent on training reaches ``seconds`` (from
    ``spent`` already used); returns the total. Only ``train_step`` is timed, so evaluation
    between budgets is not counted."""
    while spent < seconds:
        c0 = time.process_time()
        train_step(state, rep)
        spent += time.process_time() - c0
        if state.step % 200 == 0:
            rep.flush()
    return spent


def machine_speed(seconds: float = 5.0) -> float:
    """This machine's speed now, on a fixed fp32 workload: training steps per CPU-second of a
    width-32 DCGAN pair (batch 64, 28x28, non-saturating loss, Adam) on fixed random tensors, in
    this process's torch threads. Shared hosts change speed within an hour (a factor of 2 was seen
    between two rows of one table), so budget benchmarks print it beside each row: a slow row on a
    slow machine shows as such."""
    from ganforge.nets.dcgan import DCGANDiscriminator, DCGANGenerator
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        G, D = DCGANGenerator(100, (1, 28, 28), width=32), DCGANDiscriminator((1, 28, 28), width=32)
    opt = torch.optim.Adam([*G.parameters(), *D.parameters()], lr=2e-4, betas=(0.5, 0.999))
    z, x = torch.randn(64, 100, generator=g), torch.rand(64, 1, 28, 28, generator=g) * 2 - 1

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.softplus(-D(x)).mean() + torch.nn.functional.softplus(D(G(z))).mean()
        loss.backward()
        opt.step()

    step()  # warm-up (first-call allocations)
    n, c0 = 0, time.process_time()
    while n == 0 or time.process_time() - c0 < seconds:
        step()
        n += 1
    return n / (time.process_time() - c0)


def budget_train(preset: str, overrides: list[str], cpu_minutes: float, seed: int = 0):
    """Build a run's state and train it until ``cpu_minutes`` of process CPU time have passed."""
    cfg = resolve(preset, overrides=[f"seed={seed}", "train.progress=false", "train.steps=100000000",
                                     *overrides])
    state = build_state(cfg)
    train_for_cpu(state, Reporter(), cpu_minutes * 60)
    return state


def save_state_run(state, run_dir: Path) -> Path:
    """Write a state trained in this process (e.g. by :func:`train_for_cpu`) as the run folder
    ``run_dir`` that ``ganforge train`` would have left at its step: config, run info and a
    complete checkpoint (what ``train.init`` and ``ganforge save-model`` read)."""
    run = new_run_dir(state.cfg, state, run_dir)
    save_run(state, run)
    return run


def as_generator(state):
    """The state's sampling generator (EMA when kept) as a :class:`ganforge.trained.TrainedGenerator`."""
    net = state.sampler_net
    net.eval()
    return TrainedGenerator(net, state.cfg, args=state.g_args, step=state.step, ema=state.G_ema is not None,
                            device=state.device, num_classes=state.data.num_classes)


# -- evaluation through the metric registry --------------------------------------------------------

def seeded_sampler(net, cfg, device, num_classes: int = 0):
    """``sample(k, seed)``: the latent (then uniform labels for conditional models) from a CPU
    generator seeded by ``seed`` -- the convention of ganforge's evaluation."""
    conditional = bool(cfg.model.conditional) and num_classes > 0

    @torch.no_grad()
    def sample(k: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        z = sample_latent(cfg.model.latent, k, cfg.model.z_dim, generator=g)
        y = torch.randint(num_classes, (k,), generator=g).to(device) if conditional else None
        return net(z.to(device), y)
    return sample


class _Sampler:
    """A sampler function seen as a noise-to-image model by the evaluation."""

    step, checkpoint, ema, conditional, num_classes = 0, None, False, False, 0

    def __init__(self, sample_fn, data_shape=(1, 28, 28)):
        self.task, self.cfg, self.data_shape, self._fn = TASKS.get("generate"), resolve("dcgan"), data_shape, sample_fn

    def sample(self, k, seed=None):
        return self._fn(k, seed)


def evaluate_generator(sample_fn, *, metrics: str, n: int, ref: str, extractor, seed: int = 0, progress=False) -> dict:
    """The registered metrics of ``n`` samples of ``sample_fn(k, seed)`` against ``ref``."""
    return evaluate(_Sampler(sample_fn), metrics=metrics, n=n, ref=ref, extractor=extractor, seed=seed,
                    progress=progress)


class _Features:
    """An evaluation context with given feature sets (the floor: real images as the "samples")."""

    def __init__(self, real, fake, probs, seed):
        self.real, self.fake, self.probs, self.seed, self._cache = real, fake, probs, seed, {}

    def reference(self):
        return self.real, None, {}

    def fake_features(self):
        return self.fake, self.probs

    def _once(self, key, make):
        return self._cache.setdefault(key, make())


def compute(metrics, real_f, fake_f, fake_p=None, *, seed: int = 0) -> dict:
    """Registered feature metrics on given features."""
    out, ctx = {}, _Features(real_f, fake_f, fake_p, seed)
    for m in metrics:
        out.update(m.compute(ctx))
    return out


def conditional_results(g, *, n: int, ref: str, extractor, seed: int = 0) -> dict:
    return evaluate(g, metrics="acc,ifid", n=n, ref=ref, extractor=extractor, seed=seed)["results"]


def translation_results(g, inputs, targets, *, extractor=None, baseline: bool = False) -> dict:
    """The task's image-to-image metrics of ``g`` on the given uint8 test inputs and targets."""
    ctx = EvalContext(g, n=len(inputs), ref=f"{g.cfg.data.name}:test", extractor=extractor)
    ctx._cache["split"] = Split(targets, None, inputs)
    names = g.task.metrics_for(g).split(",")
    if extractor is None:
        names.remove("fid")
    else:
        f, p = extractor.extract(targets, progress=False)
        ctx._cache["reference"] = (f, p, {})
    if not baseline and "bicubic" in names:
        names.remove("bicubic")
    out = {}
    for m in parse_metrics(",".join(names), g):
        out.update(m.compute(ctx))
    return out


@torch.no_grad()
def domain_results(g, *, n: int, extractor, seed: int = 0, metrics: str | None = None) -> dict:
    """A multi-domain model's registered metrics (the task's defaults: domain_acc, content_acc,
    fid_domains) on the first ``n`` images of its test split, each sent to a seeded random target
    domain, plus two L1 figures (images in [-1, 1]) from the same translations:
    ``cycle_l1`` = mean |G(G(x, target), source) - x| and, when the dataset can undo its domains,
    ``content_l1`` = mean |canonical(G(x, target), target) - canonical(x, source)|."""
    ctx = EvalContext(g, n=n, seed=seed, ref=f"{g.cfg.data.name}:test", extractor=extractor)
    out = {}
    for m in parse_metrics(metrics or g.task.metrics_for(g), g):
        out.update(m.compute(ctx))
    t = g.task.translations(ctx)
    back = torch.cat([g.task.to_domains(g, t["out"][i:i + 200], t["source"][i:i + 200])
                      for i in range(0, len(t["out"]), 200)])
    out["cycle_l1"] = float((back - t["x"]).abs().mean())
    canonical = dataset(g.cfg.data.name).canonical
    if canonical is not None:
        out["content_l1"] = float((canonical(t["out"], t["target"]) - canonical(t["x"], t["source"])).abs().mean())
    return out


def sequence_results(g, *, n: int, seed: int = 0) -> dict:
    """A sequence model's registered metrics (its task's defaults: disc_score, pred_score) on ``n``
    generated vs the first ``n`` test sequences, plus ``predictive_score_timegan``: the predictive
    score by TimeGAN's own protocol (the last feature of the next step from the other features),
    halved to the [0, 1] units of the paper's data (ours are in [-1, 1])."""
    ctx = EvalContext(g, n=n, seed=seed, ref=f"{g.cfg.data.name}:test")
    out = {}
    for m in parse_metrics(g.task.metrics_for(g), g):
        out.update(m.compute(ctx))
    (real, rl), (fake, fl) = g.task.real_sequences(ctx), g.task.generated_sequences(ctx)
    out["predictive_score_timegan"] = predictive_score(fake, real, train_lengths=fl, test_lengths=rl, seed=seed,
                                                       target="last") / 2
    return out


def mean_std(v) -> tuple[float, float]:
    import statistics
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


# -- options -----------------------------------------------------------------------------------------

def _seed_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers expected, got {text!r}") from None


#: name -> (flags, argparse keywords); every benchmark has seeds, threads and json.
OPTIONS = {
    "seeds": (("--seeds",), dict(type=_seed_list, default="0,1,2", help="comma-separated seeds (default 0,1,2)")),
    "threads": (("--threads",), dict(type=int, default=0, help="torch CPU threads (default: PyTorch's)")),
    "json": (("--json",), dict(default=None, help="also write the results as JSON here")),
    "presets": (("--presets",), dict(default=None, help="comma-separated presets")),
    "datasets": (("--datasets",), dict(default=None, help="comma-separated toy datasets")),
    "steps": (("--steps",), dict(type=int, default=None, help="override the benchmark's step count")),
    "budgets": (("--budgets",), dict(default=None, help="CPU-minute budgets")),
    "minutes": (("--minutes",), dict(type=float, default=None, help="wall-minutes of training (default 30)")),
    "augment": (("--augment",), dict(action="store_true", help="also the data-augmentation study")),
    "set": (("--set", "-s"), dict(action="append", metavar="KEY=VALUE", help="extra config overrides")),
    "out": (("--out",), dict(default="runs/bench", help="where benchmark runs go (default runs/bench)")),
}


def make_parser(name: str, description: str, **options: str | bool) -> argparse.ArgumentParser:
    """``python -m benchmarks.NAME`` options: seeds, threads, json and the named ones from
    :data:`OPTIONS` (``True`` keeps the standard help, a string replaces it)."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=description)
    for key, help_text in {"seeds": True, "threads": True, "json": True, **options}.items():
        flags, kw = OPTIONS[key]
        kw = dict(kw)
        if isinstance(help_text, str):
            kw["help"] = help_text
        p.add_argument(*flags, **kw)
    return p


# -- header and output --------------------------------------------------------------------------------

def git_commit(root: Path = ROOT) -> str:
    """The short commit hash of the checkout at ``root``, ``+dirty`` if its tree has uncommitted
    changes or untracked files (or why it is unknown)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    try:
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = git("status", "--porcelain").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    return head.stdout.strip() + ("+dirty" if dirty else "")


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), the vector kernels torch uses on it and the CPU
    count: CPU-time budgets buy different numbers of steps on different CPUs, so tables name it."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} CPUs"


def environment() -> str:
    return (f"ganforge {__version__}, torch {torch.__version__}, python {platform.python_version()}, "
            f"threads {torch.get_num_threads()}, {cpu_model()}")


def command() -> str:
    """This process's command line as typed from the repository root."""
    module = Path(sys.argv[0]).stem
    return " ".join(["python -m", f"benchmarks.{module}", *map(shlex.quote, sys.argv[1:])])


_run_info: dict = {}


def header(args, settings: str, seeds=None) -> None:
    """Print the command, the commit, the environment, the seeds used (default: all of
    ``--seeds``) and the settings."""
    _run_info.update(command=command(), commit=git_commit(), environment=environment(), t0=time.perf_counter())
    print(f"command: {_run_info['command']}")
    print(f"commit: {_run_info['commit']}")
    print(f"environment: {_run_info['environment']}")
    print(f"seeds: {','.join(map(str, args.seeds if seeds is None else seeds))}")
    print(f"settings: {settings}", flush=True)


def run_info() -> dict:
    """The command, commit and environment that :func:`header` printed (for a table that names them)."""
    return {k: v for k, v in _run_info.items() if k != "t0"}


def finish(args, rows, table: str, **extra) -> int:
    """Print the wall time and the Markdown table; with ``--json`` also write everything there."""
    print(f"\ntotal wall time {time.perf_counter() - _run_info.get('t0', time.perf_counter()):.0f} s\n\n{table}")
    if args.json:
        doc = {"command": _run_info.get("command"), "commit": _run_info.get("commit"),
               "environment": _run_info.get("environment"), "rows": rows, **extra}
        Path(args.json).write_text(json.dumps(doc, indent=1, default=float))
    return 0


def cli(parser: argparse.ArgumentParser, body, argv: list[str] | None = None) -> None:
    """Parse the options, run ``body(args)`` stoppably and exit with its status: 130 after a
    Ctrl-C / SIGTERM, 2 (``error: ...``) on a ganforge user error."""
    args = parser.parse_args(argv)
    install_stop()
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        code = body(args)
    except KeyboardInterrupt as e:  # Stopped, or a Ctrl-C that came before the handler
        why = str(e) or "SIGINT"
        print(f"stopped by {why}: benchmark abandoned, no table written", file=sys.stderr)
        code = 130
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    finally:
        kill_children()
    sys.exit(code)
