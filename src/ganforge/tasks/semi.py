"""Semi-supervised classification with a GAN (Salimans et al. 2016): D is a K-class classifier
trained on a few labelled samples, on unlabelled ones and on G's samples; G learns by feature
matching. The product is D: ``ganforge classify`` runs it on image files, and the run is judged
by D's test accuracy and by a linear probe on D's features.

Data: ``semi:NAME`` over a labelled dataset (:mod:`ganforge.data.labelled`); nets: ``sgan``
(:mod:`ganforge.nets.ssl`); objective: :class:`~ganforge.objectives.ssl.SSLObjective`.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor

from ..errors import CheckpointError
from ..nets import sample_latent
from ..objectives.ssl import SSLObjective
from .base import Task, check_z

CLASSIFY_BATCH = 256  # images per forward pass of D


@contextmanager
def _eval_mode(net):
    was = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was)


class SemiTask(Task):
    help = "semi-supervised classification"
    objective = SSLObjective
    own_terms = {"unsup": "semi-supervised GAN: weight of D's unsupervised real/fake term (1)",
                 "fm": "semi-supervised GAN: weight of G's feature matching (1; 0 = non-saturating G loss)"}
    verbs = ("sample", "interpolate", "classify", "eval")
    default_metrics = "test_acc,linear_probe"
    offers = ("classifier",)

    def validate(self, cfg) -> None:
        check_z(cfg, allow_zero=False)  # sgan is not a class-conditional family: nets.validate_config refuses that

    # -- previews ------------------------------------------------------------------------------
    def fixed_inputs(self, data, cfg, seed: int) -> dict:
        g = torch.Generator().manual_seed(seed)
        return {"z": sample_latent(cfg.model.latent, cfg.train.grid_size, cfg.model.z_dim, generator=g)}

    def preview(self, net, fixed: dict, device):
        return net(fixed["z"].to(device), None).cpu(), None, None

    # -- inference -----------------------------------------------------------------------------
    def generate(self, net, z: Tensor | None, y: Tensor | None, **options) -> Tensor:
        return net(z, y)

    def classifier(self, model):
        """The run's D (class logits, features), loaded from the model's checkpoint on first use."""
        if getattr(model, "discriminator", None) is None:
            from ..checkpoint import load_weights
            from ..nets import rebuild
            if model.checkpoint is None:
                raise CheckpointError("this model has no checkpoint to read its discriminator from")
            nets, meta = load_weights(model.checkpoint)
            if "D" not in nets or "d_args" not in meta:
                raise CheckpointError(f"{model.checkpoint} holds no discriminator (model folders keep only G): "
                                      f"classify with the run folder")
            D = rebuild(model.cfg.model, meta["d_args"], "d")
            D.load_state_dict(nets["D"])
            model.discriminator = D.to(model.device).eval()
        return model.discriminator

    @torch.no_grad()
    def classify(self, model, x: Tensor) -> tuple[Tensor, Tensor]:
        """Images (N, C, H, W) in [-1, 1] -> (class logits (N, K), D's features (N, F)), on the CPU."""
        D = self.classifier(model)
        logits, feats = [], []
        with _eval_mode(D):
            for i in range(0, len(x), CLASSIFY_BATCH):
                lo, f = D(x[i:i + CLASSIFY_BATCH].to(model.device, torch.float32))
                logits.append(lo.cpu())
                feats.append(f.cpu())
        return torch.cat(logits), torch.cat(feats)

    def class_names(self, cfg) -> tuple[str, ...]:
        """The wrapped dataset's class names (``semi:NAME`` -> NAME's)."""
        from ..data import DATASETS, parse_name
        _, inner = parse_name(cfg.data.name)
        key, _ = parse_name(inner)
        return DATASETS.get(key).classes if key in DATASETS else ()

    # -- evaluation ----------------------------------------------------------------------------
    def outputs(self, ctx):
        from .generate import EVAL_BATCH
        for i, s in enumerate(range(0, ctx.n, EVAL_BATCH)):
            yield ctx.model.sample(min(EVAL_BATCH, ctx.n - s), seed=ctx.seed * 1_000_003 + i)


__all__ = ["SemiTask"]
