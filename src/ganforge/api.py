"""Using a trained run: load its generator and sample from it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, load_weights
from .config import Config
from .nets import rebuild, sample_latent
from .rundir import CHECKPOINTS, RunDirError, read_run


class UsageError(ValueError):
    """A request the model cannot serve (wrong kind of model, bad class label): a one-line message."""


class Generator:
    """A trained generator with its latent distribution.

    ``sample(n, seed=...)`` for noise-to-image models (``labels=`` / ``truncation=`` for
    class-conditional and BigGAN-style ones); ``translate(images)`` for image-to-image models.
    """

    def __init__(self, net: torch.nn.Module, cfg: Config, *, step: int, checkpoint: Path, ema: bool,
                 device: torch.device, num_classes: int = 0, data_kind: str = "image"):
        self.net = net.eval()
        self.cfg = cfg
        self.step = step
        self.checkpoint = checkpoint
        self.ema = ema
        self.device = device
        self.z_dim = cfg.model.z_dim
        self.num_classes = num_classes if cfg.model.conditional else 0
        self.data_kind = data_kind
        self.args: dict = {}  # the generator's constructor arguments

    def input_shape(self, direction: str = "ab") -> tuple:
        """(C, H, W) an image-to-image model takes in the given direction."""
        key = "out_shape" if direction == "ba" else "cond_shape"
        if key not in self.args or self.args.get("cond_shape") is None:
            raise UsageError("this model does not take input images")
        return tuple(self.args[key])

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def latent(self, n: int, seed: int | None = None, truncation: float | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        g = generator or (torch.Generator().manual_seed(int(seed)) if seed is not None else None)
        return sample_latent(self.cfg.model.latent, n, self.z_dim, generator=g, truncation=truncation)

    def labels(self, n: int, labels=None, generator: torch.Generator | None = None) -> Tensor | None:
        """Class labels (n,) for a conditional model: ``labels`` (one class or n of them) or
        uniform random ones; None for an unconditional model (``labels`` must then be None)."""
        if not self.conditional:
            if labels is not None:
                raise UsageError("this generator is not class-conditional (the run had model.conditional=false)")
            return None
        if labels is None:
            return torch.randint(self.num_classes, (n,), generator=generator)
        y = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if y.numel() == 1:
            y = y.expand(n).clone()
        if y.numel() != n:
            raise UsageError(f"got {y.numel()} labels for {n} samples")
        if (y < 0).any() or (y >= self.num_classes).any():
            raise UsageError(f"class labels must be in 0..{self.num_classes - 1}, got {y.unique().tolist()}")
        return y

    @torch.no_grad()
    def __call__(self, z: Tensor | None, y: Tensor | None = None) -> Tensor:
        z = z.to(self.device) if z is not None else None
        y = y.to(self.device) if y is not None else None
        return self.net(z, y).cpu()

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, batch_size: int = 256, *, labels=None,
               truncation: float | None = None) -> Tensor:
        """``n`` samples on the CPU (images in [-1, 1]); the same seed gives the same samples.
        The latent is drawn first, then (conditional models without ``labels``) the labels."""
        if n < 1:
            raise UsageError(f"n must be >= 1, got {n}")
        if self.data_kind in ("paired", "unpaired"):
            raise UsageError("this is an image-to-image model: use translate(images), not sample(n)")
        g = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        z = self.latent(n, truncation=truncation, generator=g)
        y = self.labels(n, labels, generator=g)
        return torch.cat([self(z[i:i + batch_size], None if y is None else y[i:i + batch_size])
                          for i in range(0, n, batch_size)])

    @torch.no_grad()
    def translate(self, images: Tensor, *, direction: str = "ab", batch_size: int = 64) -> Tensor:
        """Image-to-image models: ``images`` (N, C, H, W) in [-1, 1] -> outputs in [-1, 1].
        CycleGAN models translate either way (``direction`` "ab" or "ba")."""
        if self.data_kind not in ("paired", "unpaired"):
            raise UsageError("this model generates from noise: use sample(n), not translate(images)")
        if direction not in ("ab", "ba"):
            raise UsageError(f"direction must be 'ab' or 'ba', got {direction!r}")
        if direction == "ba" and not hasattr(self.net, "ba"):
            raise UsageError("only CycleGAN models translate in the 'ba' direction")
        net = self.net.ba if direction == "ba" else (self.net.ab if hasattr(self.net, "ab") else self.net)
        outs = []
        for i in range(0, images.shape[0], batch_size):
            x = images[i:i + batch_size].to(self.device, torch.float32)
            outs.append((net(x) if hasattr(self.net, "ab") else net(None, x)).cpu())
        return torch.cat(outs)


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
    from .model_folder import is_model_folder, load_model_folder  # model folders and hf://user/name
    if is_model_folder(run_dir):
        return load_model_folder(run_dir, device, checkpoint=checkpoint, ema=ema)
    run_dir = Path(run_dir)
    cfg_d, info = read_run(run_dir)
    cfg = Config.from_dict(cfg_d)
    ckpt = resolve_checkpoint(run_dir, checkpoint)
    nets, meta = load_weights(ckpt)
    use_ema = "G_ema" in nets if ema is None else bool(ema)
    if use_ema and "G_ema" not in nets:
        raise CheckpointError(f"{ckpt} has no EMA generator (the run had train.ema=0)")
    g_args = meta.get("g_args", info["g_args"])
    try:
        net = rebuild(cfg.model, g_args, "g")
    except (TypeError, ValueError) as e:  # saved by a different model family or size
        raise CheckpointError(f"{ckpt} was not made by this run's model ({cfg.model.arch}): "
                              f"{str(e).splitlines()[0]}") from None
    try:
        net.load_state_dict(nets["G_ema" if use_ema else "G"])
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt} does not fit the run's generator: {str(e).splitlines()[0]}") from None
    device = torch.device(device)
    gen = Generator(net.to(device), cfg, step=int(meta.get("step", 0)), checkpoint=ckpt, ema=use_ema,
                     device=device, num_classes=int(info.get("num_classes") or 0),
                     data_kind=info.get("data_kind", "image"))
    gen.args = dict(g_args)
    return gen
