"""Image -> image: paired translation (pix2pix, super-resolution, deblurring) and unpaired
translation between two domains (CycleGAN)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import UsageError
from ..objectives import CycleObjective, GANObjective
from ..viz import as_image_like
from .base import Task, check_z

PAIRED_PREVIEW = 16  # input | output | target triplets in a paired run's picture
UNPAIRED_PREVIEW = 8  # A, A->B, back to A; B, B->A, back to B for each of these
EVAL_BATCH = 200


class TranslationTask(Task):
    """Shared by both translation tasks: files in, files out; outputs of the test inputs are what
    the feature metrics compare with the test targets."""

    verbs = ("translate", "eval")
    takes_images = True

    def validate(self, cfg) -> None:
        check_z(cfg, allow_zero=True)  # pix2pix: dropout is the noise

    def uses_labels(self, cfg) -> bool:
        return True  # y is the input image

    def outputs(self, ctx):
        inputs = ctx.split().inputs
        for i in range(0, min(ctx.n, len(inputs)), EVAL_BATCH):
            x = inputs[i:min(i + EVAL_BATCH, ctx.n)].float().div(127.5).sub(1)
            yield ctx.model.translate(x)


class PairedTask(TranslationTask):
    help = "paired image-to-image"
    objective = GANObjective
    default_metrics = "l1,psnr,ssim,fid"
    offers = ("pairs",)  # aligned test pairs

    def metrics_for(self, model) -> str:
        return self.default_metrics + (",bicubic" if self.is_upscaler(model.args) else "")

    @staticmethod
    def is_upscaler(args: dict) -> bool:
        """Whether the model's output is larger than its input (super-resolution)."""
        cond, out = args.get("cond_shape"), args.get("out_shape")
        return bool(cond) and tuple(cond[1:]) != tuple(out[1:])

    def fixed_inputs(self, data, cfg, seed: int) -> dict:
        g = torch.Generator().manual_seed(seed)
        x, y = data.preview(PAIRED_PREVIEW)
        z = torch.randn(x.shape[0], cfg.model.z_dim, generator=g) if cfg.model.z_dim > 0 else None
        return {"x": x, "y": y, "z": z}

    def preview(self, net, fixed: dict, device):
        z = fixed["z"].to(device) if fixed.get("z") is not None else None
        out = net(z, fixed["y"].to(device)).cpu()
        cols = [as_image_like(fixed["y"], out), out, fixed["x"]]
        return torch.stack(cols, 1).flatten(0, 1), 12, None  # (3n, C, H, W): four triplets per row

    def translate(self, net, x: Tensor, direction: str = "ab") -> Tensor:
        if direction != "ab":
            raise UsageError("only two-way (CycleGAN) models translate in the 'ba' direction")
        return net(None, x)

    def input_shape(self, args: dict, direction: str = "ab") -> tuple:
        return tuple(args["cond_shape"])


class UnpairedTask(TranslationTask):
    help = "unpaired two-domain translation"
    objective = CycleObjective
    own_terms = {"cycle": "CycleGAN: L1 cycle-consistency weight (lambda 10)",
                 "identity": "CycleGAN: L1 identity-mapping weight, relative to cycle (0.5)"}
    default_metrics = "fid,cycle"
    two_way = True

    def fixed_inputs(self, data, cfg, seed: int) -> dict:
        b, a = data.preview(UNPAIRED_PREVIEW)
        return {"b": b, "a": a}

    def preview(self, net, fixed: dict, device):
        a, b = fixed["a"].to(device), fixed["b"].to(device)
        ab, ba = net.ab(a), net.ba(b)
        rows = [a, ab, net.ba(ab), b, ba, net.ab(ba)]
        rows = [as_image_like(r, rows[1]) for r in rows]
        return torch.stack(rows, 1).flatten(0, 1).cpu(), 12, None  # two samples per row

    def translate(self, net, x: Tensor, direction: str = "ab") -> Tensor:
        if direction not in ("ab", "ba"):
            raise UsageError(f"direction must be 'ab' or 'ba', got {direction!r}")
        return (net.ab if direction == "ab" else net.ba)(x)

    def input_shape(self, args: dict, direction: str = "ab") -> tuple:
        return tuple(args["out_shape"] if direction == "ba" else args["cond_shape"])


__all__ = ["PairedTask", "UnpairedTask", "TranslationTask"]
