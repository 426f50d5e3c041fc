"""Using a trained run: load its generator and sample from it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, load_weights
from .config import Config
from .nets import rebuild, sample_latent
from .rundir import CHECKPOINTS, RunDirError, read_run


class Generator:
    """A trained generator with its latent distribution: ``sample(n, seed=...)``."""

    def __init__(self, net: torch.nn.Module, cfg: Config, *, step: int, checkpoint: Path, ema: bool,
                 device: torch.device):
        self.net = net.eval()
        self.cfg = cfg
        self.step = step
        self.checkpoint = checkpoint
        self.ema = ema
        self.device = device
        self.z_dim = cfg.model.z_dim

    def latent(self, n: int, seed: int | None = None) -> Tensor:
        g = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        return sample_latent(self.cfg.model.latent, n, self.z_dim, generator=g)

    @torch.no_grad()
    def __call__(self, z: Tensor) -> Tensor:
        return self.net(z.to(self.device)).cpu()

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, batch_size: int = 256) -> Tensor:
        """``n`` samples on the CPU (images in [-1, 1]); the same seed gives the same samples."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        z = self.latent(n, seed)
        return torch.cat([self(z[i:i + batch_size]) for i in range(0, n, batch_size)])


def resolve_checkpoint(run_dir: Path, checkpoint: str | int | None) -> Path:
    root = Path(run_dir) / CHECKPOINTS
    if checkpoint is None or checkpoint == "latest":
        ckpt = latest_checkpoint(root)
        if ckpt is None:
            raise RunDirError(f"{run_dir} has no checkpoint yet")
        return ckpt
    if isinstance(checkpoint, int) or str(checkpoint).isdigit():
        for p in list_checkpoints(root):
            if int(p.name.split("-")[1]) == int(checkpoint):
                return p
        steps = [int(p.name.split("-")[1]) for p in list_checkpoints(root)]
        raise RunDirError(f"{run_dir} has no checkpoint at step {checkpoint}; it has steps {steps}")
    p = Path(checkpoint)
    if not p.is_dir():
        raise RunDirError(f"checkpoint not found: {p}")
    return p


def load(run_dir: str | Path, checkpoint: str | int | None = None, *, ema: bool | None = None,
         device: str | torch.device = "cpu") -> Generator:
    """Rebuild a run's generator from its config and a checkpoint (the newest by default).

    ``ema=None`` uses the EMA weights when the run kept them, ``True`` requires them.
    """
    run_dir = Path(run_dir)
    cfg_d, info = read_run(run_dir)
    cfg = Config.from_dict(cfg_d)
    ckpt = resolve_checkpoint(run_dir, checkpoint)
    nets, meta = load_weights(ckpt)
    use_ema = "G_ema" in nets if ema is None else bool(ema)
    if use_ema and "G_ema" not in nets:
        raise CheckpointError(f"{ckpt} has no EMA generator (the run had train.ema=0)")
    net = rebuild(cfg.model, meta.get("g_args", info["g_args"]), "g")
    try:
        net.load_state_dict(nets["G_ema" if use_ema else "G"])
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt} does not fit the run's generator: {str(e).splitlines()[0]}") from None
    device = torch.device(device)
    return Generator(net.to(device), cfg, step=int(meta.get("step", 0)), checkpoint=ckpt, ema=use_ema,
                     device=device)
