"""Noise -> sample: unconditional and class-conditional generators of images or vectors."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError, EvalError
from ..nets import sample_latent
from ..objectives import GANObjective
from .base import Task, check_z

PREVIEW_POINTS = 1000  # points in the scatter plot of vector (toy) data
REAL_POINTS = 2000  # real points drawn behind them
EVAL_BATCH = 500  # samples per batch when evaluating


def _cpu_latent(cfg, n: int, g: torch.Generator) -> Tensor:
    return sample_latent(cfg.model.latent, n, cfg.model.z_dim, generator=g)


class GenerateTask(Task):
    help = "noise-to-sample"
    objective = GANObjective
    own_terms = {"aux": "ACGAN: classifier cross-entropy on real (D) and generated (D and G) samples",
                 "pl": "StyleGAN2: lazy path-length regularisation of style-based G (weight 2, every loss.pl_every)"}
    verbs = ("sample", "interpolate", "synthesize", "eval", "project", "style-mix", "truncation")
    default_metrics = "fid,kid,pr,dc,is"

    def validate(self, cfg) -> None:
        check_z(cfg, allow_zero=False)
        from ..nets import NETS
        if cfg.loss.terms.get("pl") and not hasattr(NETS.get(cfg.model.arch).generator, "synthesize"):
            raise ConfigError(f"loss.terms.pl: path-length regularisation needs a style-based generator "
                              f"(model.arch=stylegan2), not '{cfg.model.arch}'")

    def uses_labels(self, cfg) -> bool:
        return bool(cfg.model.conditional)

    # -- previews ------------------------------------------------------------------------------
    def fixed_inputs(self, data, cfg, seed: int) -> dict:
        g = torch.Generator().manual_seed(seed)
        if len(data.shape) != 3:  # vectors: a scatter plot of many points over the real data
            return {"z": _cpu_latent(cfg, PREVIEW_POINTS, g), "real": data.preview(REAL_POINTS)[0]}
        n = cfg.train.grid_size
        if self.uses_labels(cfg):  # a class-by-sample grid: one row per class
            k = data.num_classes
            per = max(1, n // k)
            return {"z": _cpu_latent(cfg, per * k, g), "y": torch.arange(k).repeat_interleave(per), "nrow": per}
        return {"z": _cpu_latent(cfg, n, g)}

    def preview(self, net, fixed: dict, device):
        y = fixed["y"].to(device) if fixed.get("y") is not None else None
        return net(fixed["z"].to(device), y).cpu(), fixed.get("nrow"), fixed.get("real")

    # -- inference -----------------------------------------------------------------------------
    def generate(self, net, z: Tensor | None, y: Tensor | None, **options) -> Tensor:
        return net(z, y, **options)  # options: psi (truncation in w) for style-based generators

    # -- evaluation ----------------------------------------------------------------------------
    def metrics_for(self, model) -> str:
        return self.default_metrics if len(model.data_shape) == 3 else "modes"  # vectors: toy mixtures

    def default_ref(self, cfg) -> str:
        from ..data import dataset
        if dataset(cfg.data.name).split is None:
            raise EvalError(f"the run trained on '{cfg.data.name}', which has no test split: give a reference "
                            f"with --ref dataset:split (e.g. fashion-mnist:test)")
        return f"{cfg.data.name}:test"

    def outputs(self, ctx):
        """``ctx.n`` samples in batches; batch i drawn with seed ``ctx.seed * 1_000_003 + i``."""
        for i, s in enumerate(range(0, ctx.n, EVAL_BATCH)):
            yield ctx.model.sample(min(EVAL_BATCH, ctx.n - s), seed=ctx.seed * 1_000_003 + i)


def validate_eval(cfg) -> None:
    if cfg.eval.every and not cfg.eval.ref:
        from ..data import dataset
        if dataset(cfg.data.name).split is None:
            raise ConfigError(f"eval.ref: set a reference (e.g. fashion-mnist:test) for data '{cfg.data.name}'")


__all__ = ["GenerateTask"]
