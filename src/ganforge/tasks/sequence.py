"""Noise -> time series: GANs on multivariate sequences (B, T, F), optionally of variable lengths.

The batches are ``(x (B, T, F), lengths (B,) or None)``; the lengths reach both nets as their
``y`` (``G(z, lengths)``, ``D(x, lengths)``), so the fake sequences of a batch get the real ones'
lengths, and :class:`~ganforge.objectives.GANObjective` trains it unchanged. Its pictures plot
real sequences beside generated ones; it is judged by TimeGAN's discriminative and predictive
scores against the dataset's test split (sines) or, for a user's own series (``csv:`` /
``npy:``), against the training data, as TimeGAN does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, EvalError
from ..nets import sample_latent
from ..objectives import GANObjective
from .base import Task, check_z

PREVIEW_ROWS = 4  # real | generated sequence pairs in a run's picture
EVAL_BATCH = 500  # sequences per forward pass when evaluating


class SequenceTask(Task):
    help = "time-series"
    objective = GANObjective
    verbs = ("sample", "eval")
    default_metrics = "disc_score,pred_score"
    offers = ("sequences",)

    def validate(self, cfg) -> None:
        check_z(cfg, allow_zero=False)
        if cfg.augment.policy:
            raise ConfigError(f"augment.policy: DiffAugment transforms images, not sequences; "
                              f"unset it (got {cfg.augment.policy!r})")

    def uses_labels(self, cfg) -> bool:
        return True  # y is the batch's lengths (None when every sequence has the full length)

    # -- previews ------------------------------------------------------------------------------
    def fixed_inputs(self, data, cfg, seed: int) -> dict:
        g = torch.Generator().manual_seed(seed)
        real, lengths = data.preview(PREVIEW_ROWS)  # (n, T, F), (n,) | None
        z = sample_latent(cfg.model.latent, len(real), cfg.model.z_dim, generator=g)
        return {"z": z, "real": real, "lengths": lengths}

    def preview(self, net, fixed: dict, device):
        lengths = fixed.get("lengths")
        fake = net(fixed["z"].to(device), None if lengths is None else lengths.to(device)).cpu()
        return fake, None, {"real": fixed["real"], "lengths": lengths}  # generated with the real ones' lengths

    def save_samples(self, x: Tensor, path, real=None, nrow: int | None = None) -> None:
        """A plot of real (when given) and generated sequences; to a ``.npy`` path, the values."""
        from ..metrics.timeseries import save_sequence_plot
        path = Path(path)
        if path.suffix.lower() == ".npy":
            np.save(path, x.detach().cpu().numpy())
            return
        real = real or {}
        n = min(len(x), PREVIEW_ROWS if real else 8)
        save_sequence_plot(path, real.get("real"), x, real_lengths=real.get("lengths"),
                           fake_lengths=real.get("lengths"), n=n)

    # -- inference -----------------------------------------------------------------------------
    def generate(self, net, z: Tensor | None, y: Tensor | None, **options) -> Tensor:
        return net(z, y)  # y: lengths (B,) or None for full-length sequences

    # -- evaluation ----------------------------------------------------------------------------
    def default_ref(self, cfg) -> str:
        from ..data import dataset
        entry = dataset(cfg.data.name)
        if entry.split is None:
            raise EvalError(f"'{cfg.data.name}' has no reference sequences: give --ref (e.g. sines:test)")
        return f"{cfg.data.name}:{'train' if entry.scheme else 'test'}"  # a user's series: its training data

    def real_sequences(self, ctx) -> tuple[Tensor, Tensor | None]:
        """Up to ``ctx.n`` reference sequences (N, T, F) and their lengths (N,) or None. The run's own
        dataset is read with the run's data options (length, features, stride)."""
        def make():
            from ..data import DATASETS, parse_name, parse_ref
            from ..data.sequences import sequence_options
            cfg = ctx.model.cfg
            name, split = parse_ref(ctx.ref)
            key, path = parse_name(name)
            entry = DATASETS.get(key) if key in DATASETS else None
            if entry is None or entry.split is None or entry.task != self.name:
                refs = [f"{d.shown(k)}:train" if d.scheme else f"{k}:train|test" for k, d in DATASETS.items()
                        if d.task == self.name and d.split is not None]
                raise EvalError(f"'{ctx.ref}' is not a time-series reference; use one of: {', '.join(refs)}")
            opts = sequence_options(cfg) if name == cfg.data.name else {}
            sp = entry.split(path or key, split, limit=0 if entry.scheme else ctx.n, **opts)
            x, lengths = sp.images.float(), sp.labels
            if tuple(x.shape[1:]) != tuple(ctx.model.data_shape):
                raise EvalError(f"reference '{ctx.ref}' has sequences of shape {tuple(x.shape[1:])}, the model "
                                f"makes {tuple(ctx.model.data_shape)}")
            if len(x) > ctx.n:  # a seeded subset of a user's (windowed) series
                keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(ctx.seed))[:ctx.n]
                x, lengths = x[keep], None if lengths is None else lengths[keep]
            return x, lengths
        return ctx._once("real_sequences", make)

    def generated_sequences(self, ctx) -> tuple[Tensor, Tensor | None]:
        """``ctx.n`` generated sequences and their lengths, drawn (with seed ``ctx.seed``) from the
        reference's lengths when those vary, else full length."""
        def make():
            _, real_lengths = self.real_sequences(ctx)
            g = torch.Generator().manual_seed(ctx.seed * 1_000_003)
            xs, ls = [], []
            for s in range(0, ctx.n, EVAL_BATCH):
                k = min(EVAL_BATCH, ctx.n - s)
                z = ctx.model.latent(k, generator=g)
                lengths = None
                if real_lengths is not None:
                    lengths = real_lengths[torch.randint(len(real_lengths), (k,), generator=g)]
                    ls.append(lengths)
                xs.append(ctx.model(z, lengths))
            return torch.cat(xs), torch.cat(ls) if ls else None
        return ctx._once("generated_sequences", make)

    def outputs(self, ctx):
        yield self.generated_sequences(ctx)[0]


__all__ = ["SequenceTask"]
