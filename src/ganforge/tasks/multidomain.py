"""Multi-domain image-to-image translation (StarGAN, Choi et al. 2018): one generator G(x, c) takes
an image to any of K domains. ``ganforge translate RUN IMAGES --to DOMAIN`` names the target by
name or index (attribute models: several names, comma-separated). Its pictures show each input
followed by its translation to every domain; it is judged by how often a domain classifier puts
the translations in their target domain, whether their content survives (when the dataset can
tell, as fmnist-domains), and by FID per target domain.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import UsageError
from ..objectives.stargan import StarObjective
from ..viz import as_image_like
from .base import Task, check_z

PREVIEW_INPUTS = 8  # inputs in a run's picture, one row each
EVAL_BATCH = 200


class MultiDomainTask(Task):
    help = "multi-domain image-to-image"
    objective = StarObjective
    own_terms = {"cls": "StarGAN: domain classification weight (lambda_cls 1), D on real and G on translated images",
                 "rec": "StarGAN: L1 cycle reconstruction weight (lambda_rec 10)"}
    verbs = ("translate", "eval")
    default_metrics = "domain_acc,content_acc,fid_domains"
    takes_images = True
    offers = ("domains",)

    def validate(self, cfg) -> None:
        check_z(cfg, allow_zero=True)  # StarGAN has no noise

    def uses_labels(self, cfg) -> bool:
        return True  # y is the source domain

    # -- previews ------------------------------------------------------------------------------
    def fixed_inputs(self, data, cfg, seed: int) -> dict:
        x, c = data.preview(PREVIEW_INPUTS)
        return {"x": x, "c": c}

    @staticmethod
    def _all_targets(c: Tensor, k: int) -> list[Tensor]:
        """One target per domain: class k for domain labels; attribute k toggled for attributes."""
        if not c.is_floating_point():
            return [torch.full_like(c, j) for j in range(k)]
        out = []
        for j in range(k):
            t = c.clone()
            t[:, j] = 1 - t[:, j]
            out.append(t)
        return out

    def preview(self, net, fixed: dict, device):
        x, c = fixed["x"].to(device), fixed["c"].to(device)
        outs = [net(x, t) for t in self._all_targets(c, net.num_domains)]
        cols = [as_image_like(x, outs[0])] + outs
        return torch.stack(cols, 1).flatten(0, 1).cpu(), len(cols), None  # a row per input: x, then each domain

    # -- inference -----------------------------------------------------------------------------
    def domain_names(self, cfg) -> tuple[str, ...]:
        """The run's domain names (empty when its data cannot be read any more)."""
        from ..data import dataset, parse_name
        from ..data.multidomain import domain_names
        entry = dataset(cfg.data.name)
        if entry.classes:
            return tuple(entry.classes)
        try:
            return domain_names(parse_name(cfg.data.name)[1])
        except Exception:  # noqa: BLE001  (moved or unreadable data: domains by index only)
            return ()

    def parse_direction(self, model, direction) -> int | Tensor:
        """``--to``: a domain name or index -> its index; several (comma-separated, attribute
        models) -> a multi-hot (K,) vector."""
        if isinstance(direction, (int, Tensor)):
            return direction
        k = int(model.args["num_classes"])
        names = self.domain_names(model.cfg)
        choose = f"{', '.join(names)} or " if names else ""
        if direction is None or (direction == "ab" and "ab" not in names):  # the two-domain default
            raise UsageError(f"give the target domain with --to ({choose}an index 0..{k - 1})")
        picked = []
        for part in [p.strip() for p in str(direction).split(",") if p.strip()]:
            if part in names:
                picked.append(names.index(part))
            elif part.isdigit() and int(part) < k:
                picked.append(int(part))
            else:
                raise UsageError(f"unknown target domain {part!r}: give --to with {choose}an index 0..{k - 1}")
        if not picked:
            raise UsageError(f"give the target domain with --to ({choose}an index 0..{k - 1})")
        if len(picked) == 1:
            return picked[0]
        return torch.zeros(k).index_fill_(0, torch.tensor(picked), 1.0)

    def translate(self, net, x: Tensor, direction="ab") -> Tensor:
        if isinstance(direction, Tensor):
            return net(x, direction.to(x.device, x.dtype).expand(x.shape[0], -1))
        if not isinstance(direction, int):
            raise UsageError("give the target domain with --to")
        return net(x, torch.full((x.shape[0],), direction, dtype=torch.long, device=x.device))

    def input_shape(self, args: dict, direction="ab") -> tuple:
        return tuple(args["out_shape"])

    # -- evaluation ----------------------------------------------------------------------------
    def default_ref(self, cfg) -> str:
        from ..data import dataset
        return f"{cfg.data.name}:{'train' if dataset(cfg.data.name).scheme else 'test'}"  # user data: its own

    def reference_options(self, cfg, ref: str) -> dict:
        """The run's own data is read at the run's image size and channels (a user's folder has none of its own)."""
        from ..data import parse_ref
        if parse_ref(ref)[0] == cfg.data.name:
            return {"image_size": cfg.data.image_size, "channels": cfg.data.channels}
        return {}

    def metrics_for(self, model) -> str:
        from pathlib import Path

        from ..data import dataset, parse_name
        entry = dataset(model.cfg.data.name)
        if entry.canonical is not None:
            return self.default_metrics
        if entry.scheme and Path(parse_name(model.cfg.data.name)[1]).expanduser().is_file():
            return "domain_acc,fid"  # an attribute file: no single target domain per image to split FID by
        return "domain_acc,fid_domains"

    def translations(self, ctx) -> dict:
        """The first ``ctx.n`` reference images translated to random target domains (seed
        ``ctx.seed``): ``{"x", "source", "target", "out"}`` (images in [-1, 1])."""
        def make():
            sp = ctx.split()
            x = sp.images[:ctx.n].float().div(127.5).sub(1)
            source = sp.labels[:ctx.n]
            g = torch.Generator().manual_seed(ctx.seed)
            k = int(ctx.model.args["num_classes"])
            if source.is_floating_point():
                target = torch.randint(0, 2, source.shape, generator=g).float()
            else:
                target = torch.randint(0, k, source.shape, generator=g)
            out = torch.cat([self.to_domains(ctx.model, x[i:i + EVAL_BATCH], target[i:i + EVAL_BATCH])
                             for i in range(0, len(x), EVAL_BATCH)])
            return {"x": x, "source": source, "target": target, "out": out}
        return ctx._once("translations", make)

    @torch.no_grad()
    def to_domains(self, model, x: Tensor, target: Tensor) -> Tensor:
        """G(x, target) for a batch with one target per image, on the CPU."""
        self.require("translate")
        return model.net(x.to(model.device), target.to(model.device)).cpu()

    def outputs(self, ctx):
        yield self.translations(ctx)["out"]


__all__ = ["MultiDomainTask"]
