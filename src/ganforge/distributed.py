"""Data-parallel training over several processes (``torchrun``): the launch, the nets' views, collectives.

The trainer owns parallelism (DESIGN 14); the nets stay plain modules, and checkpoints, the EMA
and sample pictures use them as they are. Only the two training phases call *views*
(:class:`NetView`) that run a net through ``DistributedDataParallel`` and / or ``torch.compile``.

The scheme is exact by construction. Every process builds the same run from the same seed and
draws the same GLOBAL batch of real samples and latents (``train.batch_size`` is the global
batch), then keeps its own slice: process ``r`` of ``w`` takes rows ``r*b .. (r+1)*b - 1``, with
``b = batch / w``. DDP averages the gradients of the processes' mean losses, which is the
gradient of the mean over the global batch, so the weights follow a one-process run with the same
global batch up to float rounding, as long as the nets treat the samples of a batch independently.
Batch norm does not: each process normalises its own slice, unless ``train.sync_bn`` (CUDA only)
makes it use the statistics of the global batch. RNG and data states are identical on every
process, so every process can restore the same checkpoint.

Process 0 (the *main* process) writes the run folder, logs, samples and checkpoints and shows the
progress bar; the others take part in every collective (gradient all-reduce, the averaged logged
statistics, the agreed stop) and write nothing.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as tdist
from torch import Tensor, nn

from .config import Config, ConfigError

# What torchrun sets in each process: its rank, its rank on the machine, the process count and
# the rendezvous address.
ENV_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
LAUNCH = "launch with `torchrun --nproc_per_node=N -m ganforge train ...`"


class LaunchError(ConfigError):
    """torchrun's environment variables are missing or inconsistent (a one-line message)."""


@dataclass(frozen=True)
class Dist:
    """This process's place in the run; one process (``world_size`` 1) needs no process group."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def active(self) -> bool:
        """True when there are several processes (collectives and DDP are in use)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- data ---------------------------------------------------------------------------------
    def shard(self, batch: tuple) -> tuple:
        """This process's rows of a global batch ``(x, y)`` (``None`` entries stay ``None``)."""
        def rows(t):
            b = t.shape[0] // self.world_size
            return t[self.rank * b:(self.rank + 1) * b]
        return tuple(None if t is None else rows(t) for t in batch)

    # -- collectives (each is the identity in one process) ------------------------------------
    def _comm_device(self) -> torch.device:
        return self.device if tdist.get_backend() == "nccl" else torch.device("cpu")

    def mean(self, t: Tensor) -> Tensor:
        """``t`` averaged over the processes (an all-reduce)."""
        if not self.active:
            return t
        buf = t.detach().to(self._comm_device(), torch.float32, copy=True)
        tdist.all_reduce(buf, op=tdist.ReduceOp.SUM)
        return buf.div_(self.world_size).to(t.device, t.dtype)

    def any(self, *flags: bool) -> list[bool]:
        """Each flag, True if it is True in any process (an all-reduce: all processes agree)."""
        if not self.active:
            return [bool(f) for f in flags]
        buf = torch.tensor([float(bool(f)) for f in flags], device=self._comm_device())
        tdist.all_reduce(buf, op=tdist.ReduceOp.MAX)
        return [bool(v) for v in buf.tolist()]

    def broadcast(self, obj):
        """The main process's ``obj`` (any picklable value), in every process."""
        if not self.active:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def from_main(self, fn):
        """``fn()`` run by the main process only; its result, or its exception, in every process
        (so that a failure on the main process cannot leave the others waiting)."""
        if not self.active:
            return fn()
        out = None
        if self.is_main:
            try:
                out = (True, fn())
            except Exception as e:  # noqa: BLE001 - handed to every process, re-raised below
                out = (False, e)
        ok, value = self.broadcast(out)
        if not ok:
            raise value
        return value


# -- launch ---------------------------------------------------------------------------------

def read_env(environ=None) -> tuple[int, int, int] | None:
    """``(rank, local_rank, world_size)`` from torchrun's variables, or None outside torchrun.

    Raises :class:`LaunchError` when the variables are incomplete or contradict each other.
    """
    env = os.environ if environ is None else environ
    present = [k for k in ENV_VARS if env.get(k, "") != ""]
    if not any(k in present for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")):
        return None
    missing = [k for k in ENV_VARS if k not in present]
    if missing:
        raise LaunchError(f"distributed launch: {', '.join(missing)} not set (found {', '.join(present)}); {LAUNCH}")
    values = {}
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT", "LOCAL_WORLD_SIZE"):
        if env.get(k, "") == "":
            continue
        try:
            values[k] = int(env[k])
        except ValueError:
            raise LaunchError(f"distributed launch: {k}={env[k]!r} is not an integer; {LAUNCH}") from None
    rank, local, world = values["RANK"], values["LOCAL_RANK"], values["WORLD_SIZE"]
    if world < 1:
        raise LaunchError(f"distributed launch: WORLD_SIZE={world} must be >= 1; {LAUNCH}")
    if not 0 <= rank < world:
        raise LaunchError(f"distributed launch: RANK={rank} is outside 0..WORLD_SIZE-1={world - 1}; {LAUNCH}")
    local_world = values.get("LOCAL_WORLD_SIZE", world)
    if not 0 <= local < local_world or local_world > world:
        raise LaunchError(f"distributed launch: LOCAL_RANK={local} with LOCAL_WORLD_SIZE={local_world} and "
                          f"WORLD_SIZE={world} is inconsistent; {LAUNCH}")
    if not 0 < values["MASTER_PORT"] < 65536:
        raise LaunchError(f"distributed launch: MASTER_PORT={values['MASTER_PORT']} is not a port; {LAUNCH}")
    return rank, local, world


def check_launch(cfg: Config, world_size: int, device: torch.device, local_rank: int = 0,
                 explicit_device: bool = False) -> None:
    """Config checks that depend on the number of processes and the device (before any process
    group exists, so every process fails alike with a one-line message)."""
    t = cfg.train
    if t.sync_bn and device.type != "cuda":
        raise ConfigError("train.sync_bn needs CUDA (torch's SyncBatchNorm runs on GPUs only); on the CPU each "
                          "process normalises its own slice of the batch: set train.sync_bn=false")
    if world_size == 1:
        return
    if t.batch_size % world_size:
        lower = t.batch_size - t.batch_size % world_size
        raise ConfigError(f"train.batch_size={t.batch_size} is the global batch and must divide by the "
                          f"{world_size} processes; use e.g. {lower or world_size} or "
                          f"{lower + world_size}")
    pack = cfg.model.d.get("pack", 1) if isinstance(cfg.model.d, dict) else 1
    if isinstance(pack, int) and pack > 1 and (t.batch_size // world_size) % pack:
        raise ConfigError(f"model.d.pack={pack}: each process's slice of train.batch_size={t.batch_size} "
                          f"({t.batch_size // world_size} with {world_size} processes) must divide by the pack size")
    if device.type == "cuda":
        if explicit_device:
            raise ConfigError(f"train.device={t.device} with torchrun: use train.device=cuda (or auto); "
                              f"each process takes cuda:LOCAL_RANK")
        if local_rank >= torch.cuda.device_count():
            raise LaunchError(f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} GPUs; "
                              f"use --nproc_per_node <= {torch.cuda.device_count()}")


@contextmanager
def launch(cfg: Config, device: torch.device, environ=None):
    """Yield this process's :class:`Dist`: one process without torchrun, else a member of a
    process group (gloo on the CPU, NCCL on GPUs, process ``r`` on ``cuda:LOCAL_RANK``) that is
    destroyed on the way out."""
    env = read_env(environ)
    if env is None or env[2] == 1:
        check_launch(cfg, 1, device)
        yield Dist(device=device)
        return
    rank, local, world = env
    check_launch(cfg, world, device, local, explicit_device=cfg.train.device.startswith("cuda:"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if rank == 0 and cfg.augment.ada_target > 0:
        print("warning: augment.ada_target: each process adapts p from its own slice of the batch "
              "(the processes' p may drift apart; the weights stay in sync)", file=sys.stderr)
    owner = not tdist.is_initialized()
    if owner:
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                 device_id=device if device.type == "cuda" else None)
    elif (tdist.get_rank(), tdist.get_world_size()) != (rank, world):
        raise LaunchError(f"a process group exists with rank {tdist.get_rank()} of {tdist.get_world_size()}, "
                          f"but RANK={rank}, WORLD_SIZE={world}")
    try:
        yield Dist(rank=rank, local_rank=local, world_size=world, device=device)
    finally:
        if owner and tdist.is_initialized():
            tdist.destroy_process_group()


# -- views: how the training phases call the nets ------------------------------------------

class _Route(nn.Module):
    """Calls ``net``, or its sub-net ``_part`` (a dotted attribute name), so that one wrapper
    (DDP, torch.compile) serves objectives that call parts of a net, like CycleGAN's ``G.ab``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *args, _part: str = "", **kwargs):
        return (self.net.get_submodule(_part) if _part else self.net)(*args, **kwargs)


class NetView:
    """A net as the training phases see it: calls (of the net or of any sub-net attribute,
    ``view.ab(x)``) go through ``runner`` (DDP and / or torch.compile around the net); every other
    attribute (parameters, sizes, ``shared``, ...) is the plain net's own."""

    def __init__(self, net: nn.Module, runner, part: str = ""):
        self.net, self.runner, self.part = net, runner, part

    def __call__(self, *args, **kwargs):
        if self.part:
            kwargs["_part"] = self.part
        return self.runner(*args, **kwargs)

    def __getattr__(self, name: str):
        attr = getattr(self.net, name)
        if isinstance(attr, nn.Module):
            return NetView(attr, self.runner, f"{self.part}.{name}" if self.part else name)
        return attr

    def __repr__(self) -> str:
        part = f".{self.part}" if self.part else ""
        return f"NetView({type(self.net).__name__}{part} via {type(self.runner).__name__})"


def train_view(net: nn.Module, dist: Dist, *, ddp: bool = True, compile: bool = False):
    """A :class:`NetView` running ``net`` through DDP (several processes, unless ``ddp`` is
    False) and / or ``torch.compile``; None when the net is called as it is."""
    ddp = ddp and dist.active
    if not (ddp or compile):
        return None
    runner: nn.Module = _Route(net)
    if ddp:
        runner = nn.parallel.DistributedDataParallel(
            runner, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    if compile:
        runner = torch.compile(runner)
    return NetView(net, runner)


def shard_objective(objective, dist: Dist) -> None:
    """Tell the objective which rows of each global batch this process owns, so its latents and
    penalty coefficients are drawn for the global batch and sliced (as one process draws them)."""
    if dist.active:
        objective.shard = (dist.rank, dist.world_size)


__all__ = ["Dist", "LaunchError", "launch", "read_env", "check_launch", "NetView", "train_view", "shard_objective"]
