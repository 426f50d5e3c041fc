"""The training loop shared by every GAN.

One iteration: fetch -> D phase (``n_critic`` D steps) -> G phase -> EMA -> periodic work
(log, samples, checkpoint). Which GAN is trained is decided entirely by the config: the nets
come from the ``NETS`` registry, the objective from ``LOSSES`` and ``REGULARIZERS``, the
optimizers from ``OPTIMIZERS``. The loop has no per-GAN branches.
"""

from __future__ import annotations

import math
import platform
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import __version__
from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import Config, ConfigError, apply_override, validate
from .data import DataSource, build_dataset
from .nets import NETS, build_nets, count_params, sample_latent
from .objective import Objective, build_objective
from .optim import build_optimizers, build_schedulers
from .rundir import (CHECKPOINTS, CONFIG, RUN_INFO, SAMPLES, MetricsLog, RunDirError, check_run_dir,
                     create_run_dir, write_json_atomic)
from .viz import save_samples


class TrainingDiverged(RuntimeError):
    """NaN or Inf reached the losses or the weights."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name}, but CUDA is not available on this machine; use auto or cpu")
    return torch.device(name)


# -- everything a run is made of -------------------------------------------------------------

@dataclass
class RunState:
    cfg: Config
    device: torch.device
    data: DataSource
    G: nn.Module
    D: nn.Module
    G_ema: AveragedModel | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler
    objective: Objective
    z_gen: torch.Generator  # latent draws and penalty interpolation coefficients
    g_args: dict
    d_args: dict
    step: int = 0  # generator steps done
    d_steps: int = 0
    images_seen: int = 0  # real images shown to D
    stats: dict = field(default_factory=dict)

    @property
    def sampler_net(self) -> nn.Module:
        """The generator to sample from: the EMA copy when there is one."""
        return self.G_ema.module if self.G_ema is not None else self.G


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def build_state(cfg: Config, device: torch.device | None = None) -> RunState:
    device = device or pick_device(cfg.train.device)
    seed_everything(cfg.seed)
    data = build_dataset(cfg)
    G, D, g_args, d_args = build_nets(cfg.model, data.shape, data.num_classes, data.kind,
                                      data.cond_shape)
    G, D = G.to(device), D.to(device)
    G_ema = None
    if cfg.train.ema > 0:
        G_ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema), use_buffers=True)
        G_ema.requires_grad_(False)
    opt_g, opt_d = build_optimizers(cfg, G, D)
    sched_g, sched_d = build_schedulers(cfg, opt_g, opt_d)
    z_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    objective = build_objective(cfg, NETS.get(cfg.model.arch).objective, generator=z_gen, device=device,
                                data=data)
    return RunState(cfg, device, data, G, D, G_ema, opt_g, opt_d, sched_g, sched_d, objective, z_gen,
                    g_args, d_args)


def _rng_state(state: RunState) -> dict:
    np_state = np.random.get_state()
    rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
           "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                     int(np_state[3]), float(np_state[4])],
           "z_gen": state.z_gen.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _set_rng_state(state: RunState, rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    n = rng["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    state.z_gen.set_state(rng["z_gen"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save(state: RunState, run_dir: Path, *, folder: str = CHECKPOINTS, keep: int | None = None) -> Path:
    """A complete checkpoint of the run (refused if any weight is NaN/Inf)."""
    nets = {"G": state.G.state_dict(), "D": state.D.state_dict()}
    if state.G_ema is not None:
        nets["G_ema"] = state.G_ema.module.state_dict()
    for name, sd in nets.items():
        for k, v in sd.items():
            if v.is_floating_point() and not torch.isfinite(v).all():
                raise TrainingDiverged(f"{name}.{k} holds NaN/Inf at step {state.step}; not checkpointed")
    extra = {"step": state.step, "d_steps": state.d_steps, "images_seen": state.images_seen,
             "opt_g": state.opt_g.state_dict(), "opt_d": state.opt_d.state_dict(),
             "sched_g": state.sched_g.state_dict(), "sched_d": state.sched_d.state_dict(),
             "data": state.data.state_dict(), "objective": state.objective.state_dict(),
             "rng": _rng_state(state)}
    if state.G_ema is not None:
        extra["ema_n_averaged"] = state.G_ema.n_averaged.detach().cpu()
    meta = {"step": state.step, "arch": state.cfg.model.arch, "g_args": state.g_args,
            "d_args": state.d_args, "ganforge": __version__}
    return save_checkpoint(Path(run_dir) / folder, state.step, nets, extra,
                           keep=state.cfg.train.keep_ckpts if keep is None else keep, metadata=meta)


def restore(state: RunState, ckpt: Path) -> None:
    nets, extra, meta = load_checkpoint(ckpt)
    if meta.get("g_args") != state.g_args or meta.get("d_args") != state.d_args:
        raise CheckpointError(f"{ckpt} was made by a different model ({meta.get('arch')}, G {meta.get('g_args')}); "
                              f"it does not fit this config")
    try:
        state.G.load_state_dict(nets["G"])
        state.D.load_state_dict(nets["D"])
        if state.G_ema is not None:
            state.G_ema.module.load_state_dict(nets.get("G_ema", nets["G"]))
            state.G_ema.n_averaged.fill_(int(extra.get("ema_n_averaged", 0)))
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{ckpt} does not fit this model: {str(e).splitlines()[0]}") from None
    state.opt_g.load_state_dict(extra["opt_g"])
    state.opt_d.load_state_dict(extra["opt_d"])
    state.sched_g.load_state_dict(extra["sched_g"])
    state.sched_d.load_state_dict(extra["sched_d"])
    state.data.load_state_dict(extra["data"])
    state.objective.load_state_dict(extra.get("objective", {}))
    _set_rng_state(state, extra["rng"])
    state.step, state.d_steps, state.images_seen = extra["step"], extra["d_steps"], extra["images_seen"]


# -- the loop --------------------------------------------------------------------------------

class _Stop:
    """First Ctrl-C / SIGTERM asks the loop to checkpoint and stop; a second Ctrl-C exits at once."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: no signal handling
            self._old = {}
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _grad_norm(module: nn.Module) -> torch.Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class Reporter:
    """Collects detached scalar tensors by name; reads them (one sync) only at log steps."""

    def __init__(self):
        self.values: dict[str, list[torch.Tensor]] = {}

    def add(self, stats: dict) -> None:
        for k, v in stats.items():
            self.values.setdefault(k, []).append(v)

    def flush(self) -> dict[str, float]:
        if not self.values:
            return {}
        keys = list(self.values)
        means = torch.stack([torch.stack([t.float().cpu() for t in self.values[k]]).mean() for k in keys])
        self.values = {}
        return dict(zip(keys, means.tolist()))


def _to(batch, device):
    return tuple(t.to(device, non_blocking=True) if t is not None else None for t in batch)


def train_step(state: RunState, report: Reporter) -> None:
    """One generator step: n_critic D steps, then one G step, then the EMA update.

    With one D step per G step the G phase reuses the D phase's generated batch (one G forward
    per iteration, as in DCGAN); with more it draws a fresh one (as in WGAN).
    """
    cfg, G, D, obj = state.cfg, state.G, state.D, state.objective
    B, n_critic = cfg.train.batch_size, cfg.train.n_critic
    reuse = n_critic == 1

    # --- D phase: n_critic updates of D, each on a fresh real batch and a generated one
    D.requires_grad_(True)
    for i in range(n_critic):
        batch = _to(state.data.next(B), state.device)  # (x (B, *shape), y labels / input images / None)
        loss_d, stats, fake = obj.d_loss(G, D, batch, d_step=state.d_steps, keep_fake=reuse)
        state.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        stats["grad/D"] = _grad_norm(D)
        state.opt_d.step()
        obj.after_d_step(D)
        state.d_steps += 1
        state.images_seen += B
        report.add(stats)

    # --- G phase: one update of G through the (frozen) D, on the last batch's conditions
    D.requires_grad_(False)
    loss_g, stats = obj.g_loss(G, D, batch, fake=fake if reuse else None, step=state.step)
    state.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    stats["grad/G"] = _grad_norm(G)
    state.opt_g.step()
    report.add(stats)
    report.add(obj.stats())

    state.sched_g.step()
    state.sched_d.step()

    # --- EMA of G's weights (decay warmed up: min(ema, (1 + t) / (10 + t)))
    if state.G_ema is not None:
        decay = cfg.train.ema
        if cfg.train.ema_warmup:
            decay = min(decay, (1 + state.step) / (10 + state.step))
        state.G_ema.multi_avg_fn = get_ema_multi_avg_fn(decay)
        state.G_ema.update_parameters(G)
    state.step += 1


def fixed_inputs(state: RunState) -> dict:
    """The inputs of every sample picture of a run (the same from picture to picture)."""
    n = state.cfg.train.grid_size if state.data.kind == "image" else 1000  # toy plots need many points
    return state.objective.fixed_inputs(state.data, n, seed=state.cfg.seed + 12345)


@torch.no_grad()
def write_samples(state: RunState, run_dir: Path, fixed: dict, name: str) -> Path:
    net = state.sampler_net
    was_training = net.training
    net.eval()
    try:
        x, nrow = state.objective.preview(net, fixed, state.device)
    finally:
        net.train(was_training)
    real = None
    if state.data.kind == "vector" and hasattr(state.data, "mixture"):  # show the data beside the samples
        real = state.data.mixture.sample(2000, torch.Generator().manual_seed(0))[0]
    path = Path(run_dir) / SAMPLES / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    save_samples(x.cpu(), path, real, nrow=nrow)
    return path


def seeded_sampler(net: nn.Module, cfg: Config, device, num_classes: int = 0):
    """``sample(k, seed) -> (k, *shape)`` drawing the latent (then, for class-conditional models,
    uniform labels) from a CPU generator seeded by ``seed`` (the sampler convention of
    :func:`ganforge.evaluate.evaluate_generator`)."""
    conditional = bool(cfg.model.conditional) and num_classes > 0

    @torch.no_grad()
    def sample(k: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        z = sample_latent(cfg.model.latent, k, cfg.model.z_dim, generator=g)
        y = torch.randint(num_classes, (k,), generator=g).to(device) if conditional else None
        return net(z.to(device), y)
    return sample


class PeriodicEval:
    """Evaluation during training (``eval.every``): logs metrics and keeps the best checkpoint."""

    def __init__(self, state: RunState, run_dir: Path):
        self.cfg = state.cfg.eval
        self.run_dir = run_dir
        self.best = math.inf
        self.extractor = None

    def __call__(self, state: RunState, log: MetricsLog) -> dict:
        from .evaluate import evaluate_generator
        from .features import get_feature_extractor
        e = self.cfg
        if self.extractor is None:
            self.extractor = get_feature_extractor(e.features, device=state.device)
        net = state.sampler_net
        was_training = net.training
        net.eval()
        try:
            sampler = seeded_sampler(net, state.cfg, state.device, state.data.num_classes)
            out = evaluate_generator(sampler, metrics=e.metrics, n=e.n, ref=e.ref or f"{state.cfg.data.name}:test",
                                     extractor=self.extractor, progress=False)
        finally:
            net.train(was_training)
        res = out["results"]
        log.write(state.step, {f"eval/{k}": v for k, v in res.items()})
        if e.best and e.best in res and res[e.best] < self.best:
            self.best = res[e.best]
            save(state, self.run_dir, folder=f"{CHECKPOINTS}/best", keep=1)
        return res


def _save_or_warn(state: RunState, run_dir: Path) -> None:
    """A periodic checkpoint; a full disk costs this checkpoint only (the previous ones survive)."""
    try:
        save(state, run_dir)
    except OSError as e:
        print(f"warning: checkpoint at step {state.step} not written ({e.strerror or e}); "
              f"the previous checkpoints are intact", file=sys.stderr)


def _fit(state: RunState, run_dir: Path, log: MetricsLog) -> dict:
    cfg = state.cfg
    t = cfg.train
    fixed = fixed_inputs(state)
    report = Reporter()
    start_step = state.step
    t0 = last_t = time.perf_counter()
    last_images = state.images_seen
    budget = t.max_minutes * 60 if t.max_minutes > 0 else math.inf
    reason = "done"
    bar = None
    if t.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=t.steps, initial=state.step, desc=run_dir.name, unit="step", dynamic_ncols=True,
                   mininterval=1.0)
    last_logged: dict = {}
    periodic_eval = PeriodicEval(state, run_dir) if cfg.eval.every else None
    retries, lr_scale = 0, 1.0
    with _Stop() as stop:
        while state.step < t.steps:
            try:
                train_step(state, report)
                step = state.step
                if step % t.log_every == 0 or step == t.steps:
                    now = time.perf_counter()
                    values = report.flush()
                    values["img/s"] = (state.images_seen - last_images) / max(now - last_t, 1e-9)
                    values["kimg"] = state.images_seen / 1000
                    values["time"] = now - t0
                    last_t, last_images = now, state.images_seen
                    log.write(step, values)
                    last_logged = values
                    if bar is not None:
                        bar.set_postfix({k: f"{values[k]:.3g}" for k in ("loss/D", "loss/G", "img/s") if k in values})
                    bad = [k for k, v in values.items() if not math.isfinite(v)]
                    if bad:
                        raise TrainingDiverged(f"{', '.join(bad)} became NaN/Inf by step {step}")
                if t.sample_every and step % t.sample_every == 0:
                    write_samples(state, run_dir, fixed, f"step-{step:07d}")
                if t.ckpt_every and step % t.ckpt_every == 0:
                    _save_or_warn(state, run_dir)
                if periodic_eval is not None and step % cfg.eval.every == 0:
                    periodic_eval(state, log)
            except TrainingDiverged as e:
                report.flush()
                ckpt = latest_checkpoint(Path(run_dir) / CHECKPOINTS)
                if retries >= t.nan_retries or ckpt is None:
                    why = "no good checkpoint to roll back to" if ckpt is None else f"gave up after {retries} rollbacks"
                    raise TrainingDiverged(f"{e}; {why}. Lower optim.lr_g / optim.lr_d, or check the data") from None
                retries += 1
                lr_scale *= t.nan_lr_scale
                restore(state, ckpt)
                last_t, last_images = time.perf_counter(), state.images_seen
                for sched, lr in ((state.sched_g, cfg.optim.lr_g), (state.sched_d, cfg.optim.lr_d)):
                    sched.base_lrs = [lr * lr_scale for _ in sched.base_lrs]  # the schedule's new base
                    for group, base in zip(sched.optimizer.param_groups, sched.base_lrs):
                        group["lr"] = base * sched.lr_lambdas[0](sched.last_epoch)
                msg = (f"{e}: rolled back to {ckpt.name} (step {state.step}), learning rates x{lr_scale:g} "
                       f"(rollback {retries} of {t.nan_retries})")
                log.write(state.step, {"event": msg})
                print(f"warning: {msg}", file=sys.stderr)
                if bar is not None:
                    bar.n = state.step
                continue
            if bar is not None:
                bar.update(1)
            if stop.requested:
                reason = "interrupted"
                break
            if time.perf_counter() - t0 > budget:
                reason = "time budget"
                break
    if bar is not None:
        bar.close()
    try:
        save(state, run_dir)
    except OSError as e:
        raise RunDirError(f"the final checkpoint could not be written to {run_dir} ({e.strerror or e}); "
                          f"free some space and resume with `ganforge train --resume {run_dir}`") from None
    final = write_samples(state, run_dir, fixed, f"step-{state.step:07d}")
    return {"reason": reason, "step": state.step, "steps_this_session": state.step - start_step,
            "seconds": time.perf_counter() - t0, "samples": str(final), "last": last_logged}


def _configure_torch(cfg: Config) -> None:
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def _environment(device) -> dict:
    return {"ganforge": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "device": str(device), "threads": torch.get_num_threads()}


def train(cfg: Config, *, run_dir: str | Path | None = None, quiet: bool = False) -> Path:
    """Train a new run from a validated config; returns the run folder."""
    validate(cfg)
    _configure_torch(cfg)
    state = build_state(cfg)
    run = Path(run_dir) if run_dir else create_run_dir(cfg.out, cfg.name or cfg.preset or "run")
    run.mkdir(parents=True, exist_ok=True)
    (run / CONFIG).write_text(cfg.to_yaml())
    info = {"data_shape": list(state.data.shape), "data_kind": state.data.kind,
            "num_classes": state.data.num_classes, "data": state.data.description,
            "arch": cfg.model.arch, "g_args": state.g_args, "d_args": state.d_args,
            "params": {"G": count_params(state.G), "D": count_params(state.D)},
            "environment": _environment(state.device)}
    write_json_atomic(run / RUN_INFO, info)
    if not quiet:
        print(f"run folder: {run}\ndata: {state.data.description}\n"
              f"G {info['params']['G']:,} params, D {info['params']['D']:,} params, device {state.device}")
    return _run(state, run, quiet)


def _run(state: RunState, run: Path, quiet: bool) -> Path:
    """Fit with the run's metrics log open, then record how the session ended."""
    log = MetricsLog(run)
    try:
        result = _fit(state, run, log)
    finally:
        log.close()
    write_json_atomic(run / "result.json", result)
    if not quiet:
        print(f"{result['reason']}: step {result['step']} in {result['seconds']:.0f}s; samples: {result['samples']}")
    return run


def resume(run_dir: str | Path, overrides: list[str] | tuple = (), *, quiet: bool = False) -> Path:
    """Continue a run from its newest good checkpoint (``overrides`` may extend train.steps)."""
    run = check_run_dir(run_dir)
    cfg = Config.from_dict(yaml.safe_load((run / CONFIG).read_text()))
    for o in overrides:
        apply_override(cfg, o)
    validate(cfg)
    _configure_torch(cfg)
    ckpt = latest_checkpoint(run / CHECKPOINTS)
    if ckpt is None:
        raise RunDirError(f"{run} has no usable checkpoint to resume from")
    state = build_state(cfg)
    restore(state, ckpt)
    if overrides:
        (run / CONFIG).write_text(cfg.to_yaml())
    if not quiet:
        print(f"resuming {run} from {ckpt.name} (step {state.step} of {cfg.train.steps})")
    return _run(state, run, quiet)


__all__ = ["train", "resume", "build_state", "train_step", "save", "restore", "RunState",
           "TrainingDiverged"]
