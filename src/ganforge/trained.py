"""Using a trained run: load its generator, then sample, translate or evaluate with it.

:func:`load_run` rebuilds a run's generator from its config and a checkpoint and returns a
:class:`TrainedGenerator`; what it can do (``sample`` or ``translate``) is decided by the run's
task (:mod:`ganforge.tasks`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .checkpoint import check_dtypes, list_checkpoints, load_weights, newest_checkpoint, step_of
from .config import Config
from .errors import CheckpointError, RunDirError, UsageError
from .nets import rebuild, sample_latent
from .rundir import CHECKPOINTS, read_run
from .tasks import task_of

SAMPLE_CHUNK = 256  # samples per forward pass in sample()


class TrainedGenerator:
    """A trained generator with its task, latent distribution and provenance.

    ``sample(n, seed=...)`` for noise-to-sample models (``labels=`` / ``truncation=`` for
    class-conditional and BigGAN-style ones); ``translate(images)`` for image-to-image models.
    """

    def __init__(self, net: torch.nn.Module, cfg: Config, *, args: dict, step: int = 0,
                 checkpoint: Path | None = None, ema: bool = False, device="cpu", num_classes: int = 0,
                 discriminator: torch.nn.Module | None = None):
        self.net = net.eval()
        self.cfg = cfg
        self.task = task_of(cfg.model.arch)
        self.args = dict(args)  # the generator's constructor arguments
        self.step, self.checkpoint, self.ema = step, checkpoint, ema
        self.device = torch.device(device)
        self.z_dim = cfg.model.z_dim
        self.num_classes = int(num_classes) if cfg.model.conditional else 0
        self.data_shape = tuple(args["out_shape"])  # per-sample shape of G's outputs
        self.discriminator = discriminator  # D, for tasks whose product is D (semi-supervised); else loaded on demand

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def input_shape(self, direction: str = "ab") -> tuple:
        """(C, H, W) an image-to-image model takes in the given direction."""
        return self.task.input_shape(self.args, direction)

    def latent(self, n: int, seed: int | None = None, truncation: float | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        g = generator or (torch.Generator().manual_seed(int(seed)) if seed is not None else None)
        try:
            return sample_latent(self.cfg.model.latent, n, self.z_dim, generator=g, truncation=truncation)
        except ValueError as e:
            raise UsageError(str(e)) from None

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

    @property
    def style_based(self) -> bool:
        """Whether truncation is psi in w space (StyleGAN-style mapping network) rather than a
        truncated normal z (BigGAN's trick)."""
        return hasattr(self.net, "mapping")

    @torch.no_grad()
    def __call__(self, z: Tensor | None, y: Tensor | None = None, *, psi: float | None = None,
                 fixed_noise: bool = False) -> Tensor:
        """G on given latents (and labels or soft labels), on the CPU; ``psi`` truncates w;
        ``fixed_noise`` uses a style-based G's stored per-layer noise (frames of a walk then differ
        only by their latents, not by fresh texture noise)."""
        self.task.require("sample")
        z = z.to(self.device) if z is not None else None
        y = y.to(self.device) if y is not None else None
        options = {"psi": psi} if psi is not None and self.style_based else {}
        if fixed_noise and self.style_based:
            options["noise_mode"] = "const"
        return self.task.generate(self.net, z, y, **options).cpu()

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, batch_size: int = SAMPLE_CHUNK, *, labels=None,
               truncation: float | None = None) -> Tensor:
        """``n`` samples on the CPU (images in [-1, 1]).

        The promise: the same seed draws the same latents (and labels), so ``sample(k, seed=s)``
        equals the first k rows of ``sample(n, seed=s)`` for k < n up to float rounding (the CPU's
        kernels may differ with the batch size), and is identical when called twice alike. The
        latent is drawn first, then (conditional models without ``labels``) the labels.
        """
        self.task.require("sample")
        if n < 1:
            raise UsageError(f"n must be >= 1, got {n}")
        g = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        psi = truncation if self.style_based else None
        z = self.latent(n, truncation=None if self.style_based else truncation, generator=g)
        y = self.labels(n, labels, generator=g)
        # generators that draw noise inside (StyleGAN's per-layer noise) draw it from torch's global RNG:
        # seed it too, in a fork, so that the same seed gives the same images and the caller's RNG is untouched
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            if seed is not None:
                torch.manual_seed(int(seed))
            return torch.cat([self(z[i:i + batch_size], None if y is None else y[i:i + batch_size], psi=psi)
                              for i in range(0, n, batch_size)])

    @torch.no_grad()
    def translate(self, images: Tensor, *, direction: str = "ab", batch_size: int = 64) -> Tensor:
        """Image-to-image models: ``images`` (N, C, H, W) in [-1, 1] -> outputs in [-1, 1].
        Two-way (CycleGAN) models translate either way (``direction`` "ab" or "ba")."""
        self.task.require("translate")
        direction = self.task.parse_direction(self, direction)
        outs = []
        for i in range(0, images.shape[0], batch_size):
            x = images[i:i + batch_size].to(self.device, torch.float32)
            outs.append(self.task.translate(self.net, x, direction).cpu())
        return torch.cat(outs)


def resolve_checkpoint(run_dir: Path, checkpoint: str | int | None) -> Path:
    root = Path(run_dir) / CHECKPOINTS
    if checkpoint is None or checkpoint == "latest":
        if not list_checkpoints(root, warn=False):
            raise RunDirError(f"{run_dir} has no checkpoint yet")
        return newest_checkpoint(root)  # damaged ones are skipped with a warning; none left: an error
    if isinstance(checkpoint, int) or str(checkpoint).isdigit():
        for p in list_checkpoints(root):
            if step_of(p) == int(checkpoint):
                return p
        steps = [step_of(p) for p in list_checkpoints(root)]
        raise RunDirError(f"{run_dir} has no checkpoint at step {checkpoint}; it has steps {steps}")
    p = Path(checkpoint)
    if not p.is_dir():
        raise RunDirError(f"checkpoint not found: {p}")
    return p


def load_run(run_dir: str | Path, checkpoint: str | int | None = None, *, ema: bool | None = None,
         device: str | torch.device = "cpu") -> TrainedGenerator:
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
    g_args = meta.get("g_args", info["g_args"])
    try:
        net = rebuild(cfg.model, g_args, "g")
    except (TypeError, ValueError) as e:  # saved by a different model family or size
        raise CheckpointError(f"{ckpt} was not made by this run's model ({cfg.model.arch}): "
                              f"{str(e).splitlines()[0]}") from None
    check_dtypes(net, nets["G_ema" if use_ema else "G"], str(ckpt))
    try:
        net.load_state_dict(nets["G_ema" if use_ema else "G"])
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt} does not fit the run's generator: {str(e).splitlines()[0]}") from None
    return TrainedGenerator(net.to(device), cfg, args=g_args, step=int(meta.get("step", 0)), checkpoint=ckpt,
                            ema=use_ema, device=device, num_classes=int(info.get("num_classes") or 0))


__all__ = ["TrainedGenerator", "load_run", "resolve_checkpoint"]
