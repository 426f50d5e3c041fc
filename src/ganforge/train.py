"""The training loop shared by every GAN.

One iteration: fetch -> D phase (``n_critic`` D steps) -> G phase -> EMA -> periodic work
(log, samples, checkpoint). Which GAN is trained is decided entirely by the config: the nets
come from the ``NETS`` registry, the objective from ``LOSSES`` and ``REGULARIZERS``, the
optimizers from ``OPTIMIZERS``. The loop has no per-GAN branches.

How the nets are run is decided once, in :func:`build_state`: the phases call *views* of the
nets (DistributedDataParallel under ``torchrun``, ``torch.compile``; see
:mod:`ganforge.distributed`), inside an autocast context (``train.amp``) and with gradient
scalers (fp16); in a plain one-process fp32 run the views are the nets themselves and the
context and scalers do nothing. Checkpoints, the EMA and sample pictures always use the plain nets.
"""

from __future__ import annotations

import functools
import math
import platform
import random
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import __version__
from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import Config, ConfigError, apply_override, validate
from .data import DataSource, build_dataset
from .distributed import Dist, launch, shard_objective, train_view
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
    images_seen: int = 0  # real images shown to D (all processes together)
    stats: dict = field(default_factory=dict)
    # how the phases run the nets (set by build_state; the defaults are a plain one-process run)
    dist: Dist = field(default_factory=Dist)  # this process's rank among torchrun's processes
    G_view: Any = None  # G seen through DDP / torch.compile by both phases; None: G itself
    D_view: Any = None  # D seen through DDP / torch.compile by the D phase; None: D itself
    D_frozen_view: Any = None  # D seen by the G phase: never through DDP (D is not updated there)
    scaler_g: torch.amp.GradScaler | None = None  # fp16 loss scaling (disabled otherwise)
    scaler_d: torch.amp.GradScaler | None = None
    autocast: Callable = nullcontext  # the mixed-precision context of the forward passes
    memory_format: torch.memory_format = torch.preserve_format  # of real image batches

    def __post_init__(self):
        for name in ("scaler_g", "scaler_d"):
            if getattr(self, name) is None:
                setattr(self, name, torch.amp.GradScaler(self.device.type, enabled=False))

    @property
    def G_train(self):
        """What both phases call as G."""
        return self.G if self.G_view is None else self.G_view

    @property
    def D_train(self):
        """What the D phase calls as D."""
        return self.D if self.D_view is None else self.D_view

    @property
    def D_frozen(self):
        """What the G phase calls as D."""
        return self.D if self.D_frozen_view is None else self.D_frozen_view

    def batch(self, n: int) -> tuple:
        """This process's slice of the next global batch of ``n`` real samples, on the device."""
        return _to(self.dist.shard(self.data.next(n)), self.device, self.memory_format)

    @property
    def sampler_net(self) -> nn.Module:
        """The generator to sample from: the EMA copy when there is one."""
        return self.G_ema.module if self.G_ema is not None else self.G


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def _notice(dist: Dist, msg: str) -> None:
    if dist.is_main:
        print(f"warning: {msg}", file=sys.stderr)


def _speed(cfg: Config, dist: Dist) -> dict:
    """How the phases run: autocast dtype, gradient scaling, memory format, what is compiled."""
    t, device = cfg.train, dist.device
    cuda = device.type == "cuda"
    if t.amp != "off" and not cuda:
        _notice(dist, f"train.amp={t.amp} is ignored on the CPU (no fast {t.amp} here); training in fp32")
    if t.channels_last and not cuda:
        _notice(dist, "train.channels_last is ignored on the CPU")
    amp = t.amp if cuda else "off"
    dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    penalties = any(float(w) > 0 for w in cfg.loss.penalties.values())
    if t.compile and penalties:
        _notice(dist, "train.compile: the D phase runs D uncompiled, because loss.penalties differentiate "
                      "twice (torch.compile has no double backward)")
    return {"autocast": functools.partial(torch.autocast, device.type, dtype=dtype) if dtype else nullcontext,
            "scaler": amp == "fp16",
            "memory_format": torch.channels_last if t.channels_last and cuda else torch.preserve_format,
            "compile_g": t.compile, "compile_d": t.compile and not penalties}


def build_state(cfg: Config, device: torch.device | None = None, dist: Dist | None = None) -> RunState:
    """Everything a run is made of. ``dist`` (from :func:`ganforge.distributed.launch`) places
    the run among torchrun's processes; without it the run is one process on ``device``."""
    dist = dist or Dist(device=device or pick_device(cfg.train.device))
    device = dist.device
    speed = _speed(cfg, dist)
    seed_everything(cfg.seed)
    data = build_dataset(cfg)
    G, D, g_args, d_args = build_nets(cfg.model, data.shape, data.num_classes, data.kind,
                                      data.cond_shape)
    G, D = G.to(device, memory_format=speed["memory_format"]), D.to(device, memory_format=speed["memory_format"])
    G_ema = None
    if cfg.train.ema > 0:
        G_ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema), use_buffers=True)
        G_ema.requires_grad_(False)
    if cfg.train.sync_bn:  # in place: the same parameters and buffers, state dict keys unchanged
        G, D = nn.SyncBatchNorm.convert_sync_batchnorm(G), nn.SyncBatchNorm.convert_sync_batchnorm(D)
    opt_g, opt_d = build_optimizers(cfg, G, D)
    sched_g, sched_d = build_schedulers(cfg, opt_g, opt_d)
    z_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    objective = build_objective(cfg, NETS.get(cfg.model.arch).objective, generator=z_gen, device=device,
                                data=data)
    shard_objective(objective, dist)
    return RunState(cfg, device, data, G, D, G_ema, opt_g, opt_d, sched_g, sched_d, objective, z_gen,
                    g_args, d_args, dist=dist,
                    G_view=train_view(G, dist, compile=speed["compile_g"]),
                    D_view=train_view(D, dist, compile=speed["compile_d"]),
                    D_frozen_view=train_view(D, dist, ddp=False, compile=cfg.train.compile),
                    scaler_g=torch.amp.GradScaler(device.type, enabled=speed["scaler"]),
                    scaler_d=torch.amp.GradScaler(device.type, enabled=speed["scaler"]),
                    autocast=speed["autocast"], memory_format=speed["memory_format"])


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


def _nets(state: RunState) -> dict:
    """The plain nets' state dicts (never a DDP or compiled wrapper's: no prefixes)."""
    nets = {"G": state.G.state_dict(), "D": state.D.state_dict()}
    if state.G_ema is not None:
        nets["G_ema"] = state.G_ema.module.state_dict()
    return nets


def _nonfinite(nets: dict) -> str:
    """The first ``net.key`` holding NaN/Inf, or ""."""
    for name, sd in nets.items():
        for k, v in sd.items():
            if v.is_floating_point() and not torch.isfinite(v).all():
                return f"{name}.{k}"
    return ""


def check_finite(state: RunState) -> None:
    """Raise TrainingDiverged in every process if any process holds a NaN/Inf weight."""
    bad = _nonfinite(_nets(state))
    if state.dist.any(bool(bad))[0]:
        raise TrainingDiverged(f"{bad or 'a weight of another process'} holds NaN/Inf at step {state.step}; "
                               f"not checkpointed")


def save(state: RunState, run_dir: Path, *, folder: str = CHECKPOINTS, keep: int | None = None) -> Path:
    """A complete checkpoint of the run (refused if any weight is NaN/Inf)."""
    nets = _nets(state)
    bad = _nonfinite(nets)
    if bad:
        raise TrainingDiverged(f"{bad} holds NaN/Inf at step {state.step}; not checkpointed")
    extra = {"step": state.step, "d_steps": state.d_steps, "images_seen": state.images_seen,
             "opt_g": state.opt_g.state_dict(), "opt_d": state.opt_d.state_dict(),
             "sched_g": state.sched_g.state_dict(), "sched_d": state.sched_d.state_dict(),
             "scaler_g": state.scaler_g.state_dict(), "scaler_d": state.scaler_d.state_dict(),
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
    for name in ("scaler_g", "scaler_d"):  # empty when saved without fp16 loss scaling
        if extra.get(name):
            getattr(state, name).load_state_dict(extra[name])
    state.data.load_state_dict(extra["data"])
    state.objective.load_state_dict(extra.get("objective", {}))
    _set_rng_state(state, extra["rng"])
    state.step, state.d_steps, state.images_seen = extra["step"], extra["d_steps"], extra["images_seen"]


# -- the loop --------------------------------------------------------------------------------

class _Stop:
    """First Ctrl-C / SIGTERM asks the loop to checkpoint and stop; a second Ctrl-C (a second or more
    later: torchrun echoes the terminal's Ctrl-C to its workers at once) exits at once."""

    def __init__(self):
        self.requested = False
        self._first = 0.0
        self._old = {}

    def __enter__(self):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: no signal handling
            self._old = {}
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT and time.monotonic() - self._first > 1.0:
            raise KeyboardInterrupt
        if not self.requested:
            self.requested, self._first = True, time.monotonic()

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _grad_norm(module: nn.Module) -> torch.Tensor:
    """The global L2 norm of ``module``'s gradients, as a tensor on their device (no host sync)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _update(loss: torch.Tensor, net: nn.Module, opt: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler) -> torch.Tensor:
    """backward -> gradient norm -> optimizer step; returns the gradient norm (a tensor).

    Under DDP the backward also averages the gradients over the processes. With fp16 loss
    scaling the gradients are unscaled before the norm, and a step whose gradients overflowed is
    skipped by the scaler (its norm is reported as 0: an overflow is not a divergence)."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    norm = _grad_norm(net)
    if scaler.is_enabled():
        norm = torch.nan_to_num(norm, nan=0.0, posinf=0.0)
    scaler.step(opt)
    scaler.update()
    return norm


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


def _to(batch, device, memory_format=torch.preserve_format):
    """A CPU batch on ``device``: pinned first for an asynchronous copy to a GPU, image tensors
    in ``memory_format`` (channels_last on CUDA)."""
    cuda = torch.device(device).type == "cuda"

    def move(t):
        if t is None:
            return None
        if cuda and t.device.type == "cpu":
            t = t.pin_memory()
        return t.to(device, non_blocking=True, memory_format=memory_format if t.dim() == 4 else torch.preserve_format)
    return tuple(move(t) for t in batch)


def train_step(state: RunState, report: Reporter) -> None:
    """One generator step: n_critic D steps, then one G step, then the EMA update.

    With one D step per G step the G phase reuses the D phase's generated batch (one G forward
    per iteration, as in DCGAN); with more it draws a fresh one (as in WGAN).

    The phases call ``state.G_train`` / ``state.D_train`` / ``state.D_frozen``: the plain nets, or
    views through DDP / torch.compile. Under DDP, G's gradients are averaged in the backward
    of the G phase only (the D phase detaches the fakes; the kept fake's graph is first
    differentiated there), D's in the D phase only (the G phase calls D outside DDP).
    """
    cfg, obj = state.cfg, state.objective
    G, D = state.G_train, state.D_train
    B, n_critic = cfg.train.batch_size, cfg.train.n_critic  # B: the global batch (all processes)
    reuse = n_critic == 1

    # --- D phase: n_critic updates of D, each on a fresh real batch and a generated one
    state.D.requires_grad_(True)
    for i in range(n_critic):
        batch = state.batch(B)  # (x (b, *shape), y labels / input images / None), b = B / processes
        with state.autocast():
            loss_d, stats, fake = obj.d_loss(G, D, batch, d_step=state.d_steps, keep_fake=reuse)
        stats["grad/D"] = _update(loss_d, state.D, state.opt_d, state.scaler_d)
        obj.after_d_step(state.D)
        state.d_steps += 1
        state.images_seen += B
        report.add(stats)

    # --- G phase: one update of G through the (frozen) D, on the last batch's conditions
    state.D.requires_grad_(False)
    with state.autocast():
        loss_g, stats = obj.g_loss(G, state.D_frozen, batch, fake=fake if reuse else None, step=state.step)
    stats["grad/G"] = _update(loss_g, state.G, state.opt_g, state.scaler_g)
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
        state.G_ema.update_parameters(state.G)
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


class _NoLog:
    """The metrics log of the processes other than the main one: they write nothing."""

    def write(self, step: int, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


# Several processes agree to stop (Ctrl-C / SIGTERM in any of them, the time budget) with one
# small all-reduce every STOP_SYNC_EVERY steps; one process checks every step.
STOP_SYNC_EVERY = 10


def _fit(state: RunState, run_dir: Path, log: MetricsLog) -> dict:
    cfg = state.cfg
    t = cfg.train
    dist = state.dist
    main = dist.is_main  # only the main process writes samples and checkpoints
    fixed = fixed_inputs(state)
    report = Reporter(reduce=dist.mean)
    start_step = state.step
    t0 = last_t = time.perf_counter()
    last_images = state.images_seen
    budget = t.max_minutes * 60 if t.max_minutes > 0 else math.inf
    stop_every = STOP_SYNC_EVERY if dist.active else 1
    reason = "done"
    bar = None
    if t.progress and main:
        from tqdm.auto import tqdm
        bar = tqdm(total=t.steps, initial=state.step, desc=run_dir.name, unit="step", dynamic_ncols=True,
                   mininterval=1.0)
    last_logged: dict = {}
    periodic_eval = PeriodicEval(state, run_dir) if cfg.eval.every and main else None
    retries, lr_scale = 0, 1.0
    with _Stop() as stop:
        while state.step < t.steps:
            try:
                train_step(state, report)
                step = state.step
                if step % t.log_every == 0 or step == t.steps:
                    now = time.perf_counter()
                    values = report.flush()  # the same (global batch) numbers in every process
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
                evaluate = cfg.eval.every and step % cfg.eval.every == 0
                if (t.ckpt_every and step % t.ckpt_every == 0) or evaluate:
                    check_finite(state)  # every process, so that all of them roll back together
                if t.sample_every and step % t.sample_every == 0 and main:
                    write_samples(state, run_dir, fixed, f"step-{step:07d}")
                if t.ckpt_every and step % t.ckpt_every == 0 and main:
                    _save_or_warn(state, run_dir)
                if periodic_eval is not None and evaluate:
                    periodic_eval(state, log)
            except TrainingDiverged as e:
                report.flush()
                ckpt = dist.broadcast(latest_checkpoint(Path(run_dir) / CHECKPOINTS) if main else None)
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
                if main:
                    print(f"warning: {msg}", file=sys.stderr)
                if bar is not None:
                    bar.n = state.step
                continue
            if bar is not None:
                bar.update(1)
            if state.step % stop_every == 0:
                interrupted, over_budget = dist.any(stop.requested, time.perf_counter() - t0 > budget)
                if interrupted:
                    reason = "interrupted"
                    break
                if over_budget:
                    reason = "time budget"
                    break
    if bar is not None:
        bar.close()
    check_finite(state)
    final = None
    if main:
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
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels


def _environment(device, dist: Dist | None = None) -> dict:
    env = {"ganforge": __version__, "torch": torch.__version__, "python": platform.python_version(),
           "device": str(device), "threads": torch.get_num_threads()}
    if dist is not None and dist.active:
        env["processes"] = dist.world_size
    return env


def _new_run_dir(cfg: Config, state: RunState, run_dir: str | Path | None) -> Path:
    """Create and describe a run folder (the main process's work)."""
    run = Path(run_dir) if run_dir else create_run_dir(cfg.out, cfg.name or cfg.preset or "run")
    run.mkdir(parents=True, exist_ok=True)
    (run / CONFIG).write_text(cfg.to_yaml())
    info = {"data_shape": list(state.data.shape), "data_kind": state.data.kind,
            "num_classes": state.data.num_classes, "data": state.data.description,
            "arch": cfg.model.arch, "g_args": state.g_args, "d_args": state.d_args,
            "params": {"G": count_params(state.G), "D": count_params(state.D)},
            "environment": _environment(state.device, state.dist)}
    write_json_atomic(run / RUN_INFO, info)
    return run


def train(cfg: Config, *, run_dir: str | Path | None = None, quiet: bool = False) -> Path:
    """Train a new run from a validated config; returns the run folder.

    Under ``torchrun`` every process calls this: the main process creates the run folder and
    writes everything; all of them train their slices of each global batch (see
    :mod:`ganforge.distributed`)."""
    validate(cfg)
    _configure_torch(cfg)
    with launch(cfg, pick_device(cfg.train.device)) as dist:
        state = build_state(cfg, dist=dist)
        run = dist.from_main(lambda: _new_run_dir(cfg, state, run_dir))
        quiet = quiet or not dist.is_main
        if not quiet:
            procs = f" x {dist.world_size} processes" if dist.active else ""
            print(f"run folder: {run}\ndata: {state.data.description}\n"
                  f"G {count_params(state.G):,} params, D {count_params(state.D):,} params, "
                  f"device {state.device}{procs}")
        return _run(state, run, quiet)


def _run(state: RunState, run: Path, quiet: bool) -> Path:
    """Fit with the run's metrics log open, then record how the session ended."""
    log = MetricsLog(run) if state.dist.is_main else _NoLog()
    try:
        result = _fit(state, run, log)
    finally:
        log.close()
    if state.dist.is_main:
        write_json_atomic(run / "result.json", result)
    if not quiet:
        print(f"{result['reason']}: step {result['step']} in {result['seconds']:.0f}s; samples: {result['samples']}")
    return run


def resume(run_dir: str | Path, overrides: list[str] | tuple = (), *, quiet: bool = False) -> Path:
    """Continue a run from its newest good checkpoint (``overrides`` may extend train.steps).

    Under ``torchrun`` every process restores the checkpoint the main process picked (the run
    folder must be readable by every machine, e.g. on a shared file system)."""
    from .rundir import read_run
    run = check_run_dir(run_dir)
    cfg_dict, _ = read_run(run)  # a damaged config.yaml / run.json is a RunDirError, not a traceback
    if not isinstance(cfg_dict, dict):
        raise RunDirError(f"{run}/{CONFIG} does not hold a config mapping")
    cfg = Config.from_dict(cfg_dict)
    for o in overrides:
        apply_override(cfg, o)
    validate(cfg)
    _configure_torch(cfg)
    with launch(cfg, pick_device(cfg.train.device)) as dist:
        ckpt = dist.from_main(lambda: latest_checkpoint(run / CHECKPOINTS))
        if ckpt is None:
            raise RunDirError(f"{run} has no usable checkpoint to resume from")
        state = build_state(cfg, dist=dist)
        restore(state, ckpt)
        if overrides and dist.is_main:
            (run / CONFIG).write_text(cfg.to_yaml())
        quiet = quiet or not dist.is_main
        if not quiet:
            print(f"resuming {run} from {ckpt.name} (step {state.step} of {cfg.train.steps})")
        return _run(state, run, quiet)


__all__ = ["train", "resume", "build_state", "train_step", "save", "restore", "check_finite", "RunState",
           "TrainingDiverged"]
