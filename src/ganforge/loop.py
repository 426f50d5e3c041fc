"""The training loop shared by every GAN.

One iteration: fetch -> D phase (``n_critic`` D steps) -> G phase -> EMA -> periodic work (log,
samples, checkpoint, evaluation). Which GAN is trained is decided entirely by the config: the
nets come from ``NETS``, the task (and with it the objective and the pictures) from ``TASKS``,
the optimizers from ``OPTIMIZERS``. The loop has no per-GAN branches.

How the nets are run is decided once, in :func:`build_state`: the phases call *views* of the nets
(DistributedDataParallel under ``torchrun``, ``torch.compile``; see :mod:`ganforge.distributed`),
inside an autocast context (``train.amp``) and with gradient scalers (fp16); in a plain
one-process fp32 run the views are the nets themselves. Checkpoints, the EMA and sample pictures
always use the plain nets.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .atomic import is_write_failure, write_error, write_or_warn
from .checkpoint import latest_checkpoint, list_checkpoints, net_states, nonfinite, restore_run, save_run
from .config import Config, settle_size
from .data import DataSource, build_dataset
from .distributed import Dist, shard_objective, train_view
from .errors import RunDirError, TrainingDiverged
from .evaluation.periodic import BestMetric, PeriodicEval
from .nets import build_nets
from .optim import LRScale, build_optimizers, build_schedulers, refresh_lr
from .previews import fixed_inputs, write_samples
from .reporting import Reporter
from .rundir import CHECKPOINTS, SAMPLES
from .runtime import pick_device, seed_everything, speed_options, to_device
from .tasks import Task, task_of
from .validation import validate


@dataclass
class RunState:
    """Everything a run is made of (see :func:`ganforge.checkpoint.save_run` for what is saved)."""
    cfg: Config
    device: torch.device
    task: Task
    data: DataSource
    G: nn.Module
    D: nn.Module
    G_ema: AveragedModel | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler
    objective: Any
    z_gen: torch.Generator  # latent draws and penalty interpolation coefficients
    g_args: dict
    d_args: dict
    d_trainable: list = field(default_factory=list)  # D's parameters the D phase trains (FreezeD leaves some out)
    lr_scale: LRScale = field(default_factory=LRScale)  # lowered by divergence rollbacks
    best: BestMetric = field(default_factory=BestMetric)  # best periodic-evaluation value so far
    step: int = 0  # generator steps done
    d_steps: int = 0
    images_seen: int = 0  # real images shown to D (all processes together)
    # how the phases run the nets (set by build_state; the defaults are a plain one-process run)
    dist: Dist = field(default_factory=Dist)
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
        return self.G if self.G_view is None else self.G_view

    @property
    def D_train(self):
        return self.D if self.D_view is None else self.D_view

    @property
    def D_frozen(self):
        return self.D if self.D_frozen_view is None else self.D_frozen_view

    def batch(self, n: int) -> tuple:
        """This process's slice of the next global batch of ``n`` real samples, on the device."""
        return to_device(self.dist.shard(self.data.next(n)), self.device, self.memory_format)

    @property
    def sampler_net(self) -> nn.Module:
        """The generator to sample from: the EMA copy when there is one."""
        return self.G_ema.module if self.G_ema is not None else self.G


def build_state(cfg: Config, device: torch.device | None = None, dist: Dist | None = None, *,
                fresh: bool = True) -> RunState:
    """Everything a run is made of. ``dist`` (from :func:`ganforge.distributed.launch`) places
    the run among torchrun's processes; without it the run is one process on ``device``.
    ``fresh`` runs start from ``train.init``'s weights when it is set (a resumed run restores its
    checkpoint instead); ``train.freeze_d`` freezes D's first blocks either way."""
    dist = dist or Dist(device=device or pick_device(cfg.train.device))
    device = dist.device
    if settle_size(cfg, device.type):  # model.size=auto: the CPU or the published size, now the device is known
        validate(cfg)
    seed_everything(cfg.seed)
    task = task_of(cfg.model.arch)
    data = build_dataset(cfg)
    speed = speed_options(cfg, dist, images=len(data.shape) == 3)
    G, D, g_args, d_args = build_nets(cfg.model, data.shape, data.num_classes, data.cond_shape)
    if cfg.train.init and fresh:  # fine-tuning: start from saved weights (checked to fit first)
        from .finetune import init_from
        init_from(G, D, cfg.train.init, what=cfg.train.init_what)
    if cfg.train.freeze_d:
        from .finetune import freeze_d
        freeze_d(D, cfg.train.freeze_d)
    G, D = G.to(device, memory_format=speed["memory_format"]), D.to(device, memory_format=speed["memory_format"])
    G_ema = None
    if cfg.train.ema > 0:
        G_ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema), use_buffers=True)
        G_ema.requires_grad_(False)
    if cfg.train.sync_bn:  # in place: the same parameters and buffers, state dict keys unchanged
        G, D = nn.SyncBatchNorm.convert_sync_batchnorm(G), nn.SyncBatchNorm.convert_sync_batchnorm(D)
    opt_g, opt_d = build_optimizers(cfg, G, D)
    lr_scale = LRScale()
    sched_g, sched_d = build_schedulers(cfg, opt_g, opt_d, lr_scale)
    z_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    objective = task.build_objective(cfg, generator=z_gen, device=device)
    shard_objective(objective, dist)
    return RunState(cfg, device, task, data, G, D, G_ema, opt_g, opt_d, sched_g, sched_d, objective, z_gen,
                    g_args, d_args, d_trainable=[q for q in D.parameters() if q.requires_grad],
                    lr_scale=lr_scale, dist=dist,
                    G_view=train_view(G, dist, compile=speed["compile_g"]),
                    D_view=train_view(D, dist, compile=speed["compile_d"]),
                    D_frozen_view=train_view(D, dist, ddp=False, compile=cfg.train.compile),
                    scaler_g=torch.amp.GradScaler(device.type, enabled=speed["scaler"]),
                    scaler_d=torch.amp.GradScaler(device.type, enabled=speed["scaler"]),
                    autocast=speed["autocast"], memory_format=speed["memory_format"])


def check_finite(state: RunState) -> None:
    """Raise TrainingDiverged in every process if any process holds a NaN/Inf weight."""
    bad = nonfinite(net_states(state))
    if state.dist.any(bool(bad))[0]:
        raise TrainingDiverged(f"{bad or 'a weight of another process'} holds NaN/Inf at step {state.step}; "
                               f"not checkpointed")


# -- one iteration -----------------------------------------------------------------------------

def _grad_norm(module: nn.Module) -> torch.Tensor:
    """The global L2 norm of ``module``'s gradients, as a tensor on their device (no host sync)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _update(loss: torch.Tensor, net: nn.Module, opt: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler) -> torch.Tensor:
    """backward -> gradient norm -> optimizer step; returns the gradient norm (a tensor). With fp16
    loss scaling a step whose gradients overflowed is skipped (its norm is reported as 0)."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    norm = _grad_norm(net)
    if scaler.is_enabled():
        norm = torch.nan_to_num(norm, nan=0.0, posinf=0.0)
    scaler.step(opt)
    scaler.update()
    return norm


def train_step(state: RunState, report: Reporter) -> None:
    """One generator step: n_critic D steps, then one G step, then the EMA update.

    With one D step per G step the G phase reuses the D phase's generated batch (one G forward per
    iteration, as in DCGAN); with more it draws a fresh one (as in WGAN). Under DDP, G's gradients
    are averaged in the G phase only and D's in the D phase only (the G phase calls D outside DDP).
    """
    cfg, obj = state.cfg, state.objective
    G, D = state.G_train, state.D_train
    B, n_critic = cfg.train.batch_size, cfg.train.n_critic  # B: the global batch (all processes)
    reuse = n_critic == 1

    # --- D phase: n_critic updates of D, each on a fresh real batch and a generated one
    for p in state.d_trainable:
        p.requires_grad_(True)
    for _ in range(n_critic):
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


# -- the loop ------------------------------------------------------------------------------------

class StopRequest:
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


def write_failed(e: BaseException) -> bool:
    """Whether ``e`` is a failed write (full disk, read-only folder, I/O error) rather than a bug."""
    return is_write_failure(e)


def _rollback(state: RunState, run_dir: Path, error: TrainingDiverged, log) -> str:
    """Restore the newest good checkpoint with lower learning rates (the scale and the rollback
    count survive the restore and are checkpointed); raise when no rollback is left."""
    t, main = state.cfg.train, state.dist.is_main
    ckpt = state.dist.broadcast(latest_checkpoint(Path(run_dir) / CHECKPOINTS, full=True) if main else None)
    done, scale = state.lr_scale.rollbacks, state.lr_scale.value
    if done >= t.nan_retries or ckpt is None:
        why = "no good checkpoint to roll back to" if ckpt is None else f"gave up after {done} rollbacks"
        raise TrainingDiverged(f"{error}; {why}. Lower optim.lr_g / optim.lr_d, or check the data") from None
    restore_run(state, ckpt)
    state.lr_scale.value, state.lr_scale.rollbacks = scale * t.nan_lr_scale, done + 1
    refresh_lr(state.sched_g)
    refresh_lr(state.sched_d)
    msg = (f"{error}: rolled back to {ckpt.name} (step {state.step}), learning rates x{state.lr_scale.value:g} "
           f"(rollback {done + 1} of {t.nan_retries})")
    log.write(state.step, {"event": msg})
    if main:
        print(f"warning: {msg}", file=sys.stderr)
    return msg


# Several processes agree to stop (Ctrl-C / SIGTERM in any of them, the time budget) with one
# small all-reduce every STOP_SYNC_EVERY steps; one process checks every step.
STOP_SYNC_EVERY = 10


def fit(state: RunState, run_dir: Path, log) -> dict:
    """Train until ``train.steps``, the time budget, or a stop request; returns how it ended."""
    cfg, t, dist = state.cfg, state.cfg.train, state.dist
    main = dist.is_main  # only the main process writes samples and checkpoints
    fixed = fixed_inputs(state)
    report = Reporter(reduce=dist.mean)
    start_step = state.step
    t0 = last_t = time.perf_counter()
    last_images = state.images_seen
    budget = t.max_minutes * 60 if t.max_minutes > 0 else math.inf
    stop_every = STOP_SYNC_EVERY if dist.active else 1
    reason, last_logged, bar = "done", {}, None
    if t.progress and main:
        from tqdm.auto import tqdm
        bar = tqdm(total=t.steps, initial=state.step, desc=run_dir.name, unit="step", dynamic_ncols=True,
                   mininterval=1.0)
    periodic_eval = PeriodicEval(state, run_dir) if cfg.eval.every and main else None
    with StopRequest() as stop:
        while state.step < t.steps:
            try:
                train_step(state, report)
                step = state.step
                if step % t.log_every == 0 or step == t.steps:  # --- log
                    now = time.perf_counter()
                    values = report.flush()  # the same (global batch) numbers in every process
                    values.update({"img/s": (state.images_seen - last_images) / max(now - last_t, 1e-9),
                                   "kimg": state.images_seen / 1000, "time": now - t0})
                    last_t, last_images, last_logged = now, state.images_seen, values
                    log.write(step, values)
                    if bar is not None:
                        bar.set_postfix({k: f"{values[k]:.3g}" for k in ("loss/D", "loss/G", "img/s") if k in values})
                    bad = [k for k, v in values.items() if not math.isfinite(v)]
                    if bad:
                        raise TrainingDiverged(f"{', '.join(bad)} became NaN/Inf by step {step}")
                evaluate = cfg.eval.every and step % cfg.eval.every == 0
                if (t.ckpt_every and step % t.ckpt_every == 0) or evaluate:
                    check_finite(state)  # every process, so that all of them roll back together
                last = step == t.steps  # the final checkpoint and picture are written after the loop
                if t.sample_every and step % t.sample_every == 0 and main and not last:  # --- pictures
                    write_or_warn("sample picture", lambda: write_samples(state, run_dir, fixed, f"step-{step:07d}"),
                                   run_dir, step)
                if t.ckpt_every and step % t.ckpt_every == 0 and main and not last:  # --- checkpoint
                    write_or_warn("checkpoint", lambda: save_run(state, run_dir), run_dir, step)
                if periodic_eval is not None and evaluate:  # --- evaluation
                    periodic_eval(state, log)
            except TrainingDiverged as e:
                report.flush()
                _rollback(state, run_dir, e, log)
                last_t, last_images = time.perf_counter(), state.images_seen
                if bar is not None:
                    bar.n = state.step
                continue
            if bar is not None:
                bar.update(1)
            if state.step % stop_every == 0:
                interrupted, over_budget = dist.any(stop.requested, time.perf_counter() - t0 > budget)
                if interrupted or over_budget:
                    reason = "interrupted" if interrupted else "time budget"
                    break
    if bar is not None:
        bar.close()
    check_finite(state)
    final = None
    if main:
        try:
            save_run(state, run_dir)
        except Exception as e:  # noqa: BLE001
            if not write_failed(e):
                raise
            then = (f"resume with `ganforge train --resume {run_dir}`" if list_checkpoints(run_dir / CHECKPOINTS)
                    else "train again (no checkpoint of this run was written)")
            raise RunDirError(f"{run_dir}: the final checkpoint of step {state.step} could not be written "
                              f"({write_error(e, run_dir)}); free some space and {then}") from None
        name = f"step-{state.step:07d}"
        write_or_warn("sample picture", lambda: write_samples(state, run_dir, fixed, name), run_dir, state.step)
        final = run_dir / SAMPLES / f"{name}.png"
        final = final if final.is_file() else None
    return {"reason": reason, "step": state.step, "steps_this_session": state.step - start_step,
            "seconds": time.perf_counter() - t0, "samples": str(final), "last": last_logged}


__all__ = ["RunState", "build_state", "check_finite", "fit", "train_step", "write_failed"]
