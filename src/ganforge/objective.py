"""Objectives: what the training loop's D phase and G phase minimise, for every kind of GAN.

The loop fetches a batch ``(x, y)`` from the data source and calls :meth:`Objective.d_loss`
``n_critic`` times, then :meth:`Objective.g_loss` once; it never needs to know which GAN it
trains. ``x`` is what D should call real (images or vectors; the target images of image-to-image
data, domain B of unpaired data) and ``y`` is what conditions the generator: class labels, an
input image, domain-A images, or None.

Two objectives are registered in :data:`OBJECTIVES` and chosen by the network family:

* ``gan``: G(z, y) against D(x, y): unconditional, class-conditional (concat, projection,
  ACGAN) and image-conditional GANs (pix2pix, super-resolution), with the adversarial loss,
  D penalties, augmentation, one-sided label smoothing and G-side terms (L1 / L2 / feature
  content losses, the ACGAN classifier loss, BigGAN's orthogonal regularisation).
* ``cycle``: CycleGAN's two generators and two discriminators, cycle and identity terms and a
  history pool of generated images.

Statistics are returned as detached tensors keyed by hierarchical names (``loss/D/gp``), so the
loop reads scalars only at log steps. Anything stateful (augmentation probability, image pools)
is in :meth:`state_dict` and checkpointed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .losses import LOSSES
from .nets import sample_latent
from .registry import Registry
from .regularizers import REGULARIZERS, clip_weights_

OBJECTIVES = Registry("objective", check=lambda o: isinstance(o, type))

# -- G-side terms: fn(*, fake, real, y, G) -> scalar; weights from loss.terms ----------------

TERMS = Registry("loss term", check=callable)

_FEATURE_NET = {}


def _feature_net(device) -> nn.Module:
    """The shipped Fashion-MNIST classifier (frozen) as an offline perceptual feature network."""
    key = str(device)
    if key not in _FEATURE_NET:
        from .features import get_feature_extractor
        _FEATURE_NET[key] = get_feature_extractor("fmnist", device=device)
    return _FEATURE_NET[key]


@TERMS.register("l1", help="pixel L1 distance of G(y) to the target x (pix2pix, lambda 100)")
def term_l1(*, fake: Tensor, real: Tensor, **_) -> Tensor:
    return (fake - real).abs().mean()


@TERMS.register("l2", help="pixel mean squared error of G(y) to the target x (SRGAN's MSE content loss)")
def term_l2(*, fake: Tensor, real: Tensor, **_) -> Tensor:
    return (fake - real).pow(2).mean()


@TERMS.register("feature", help="MSE between the frozen fmnist classifier's features of G(y) and x "
                                "(SRGAN's feature-space content loss with an offline network)")
def term_feature(*, fake: Tensor, real: Tensor, **_) -> Tensor:
    ext = _feature_net(fake.device)
    f_fake, _ = ext.net.features_and_logits(ext.preprocess(fake))
    with torch.no_grad():
        f_real, _ = ext.net.features_and_logits(ext.preprocess(real))
    return (f_fake - f_real).pow(2).mean()


@TERMS.register("ortho", help="BigGAN's orthogonal regularisation of G's weights (beta 1e-4)")
def term_ortho(*, G: nn.Module, **_) -> Tensor:
    from .nets.layers import orthogonal_penalty
    shared = getattr(G, "shared", None)  # BigGAN leaves its shared class embedding out
    return orthogonal_penalty(G, exclude=list(shared.parameters()) if shared is not None else ())


# Terms an objective reads itself rather than from TERMS (validated by name all the same).
SPECIAL_TERMS = {"aux": "ACGAN: classifier cross-entropy on real (D) and generated (D and G) samples",
                 "cycle": "CycleGAN: L1 cycle-consistency weight (lambda 10)",
                 "identity": "CycleGAN: L1 identity-mapping weight, relative to cycle (0.5)"}


def term_names() -> list[str]:
    return list(TERMS.keys()) + list(SPECIAL_TERMS)


def _logits(out) -> Tensor:
    """D's adversarial logits from its output (ACGAN discriminators also return class logits)."""
    return out[0] if isinstance(out, tuple) else out


class Objective:
    """Shared by every objective: adversarial loss, D penalties, clipping, augmentation."""

    def __init__(self, cfg, *, generator: torch.Generator, device: torch.device | str = "cpu",
                 data=None):
        self.cfg = cfg
        lc = cfg.loss
        self.loss = LOSSES.get(lc.name)
        self.penalties = [(n, REGULARIZERS.get(n), float(w)) for n, w in lc.penalties.items() if float(w) > 0]
        self.every = int(lc.penalty_every)
        self.clip = float(lc.clip)
        self.smooth = float(lc.smooth)
        self.terms = {n: float(w) for n, w in lc.terms.items() if float(w) > 0}
        self.adv_weight = float(lc.adv_weight)
        self.generator = generator  # latents, penalty interpolation, augmentation, pools
        self.device = torch.device(device)
        self.augment = self._build_augment(cfg)
        # (rank, world size) under data parallelism: random draws are made for the global batch
        # and this process keeps its rows, so N processes draw what one process would
        self.shard = (0, 1)

    def _rows(self, t: Tensor, n: int) -> Tensor:
        """This process's ``n`` rows of a draw made for the global batch of ``n * world`` rows."""
        rank, _ = self.shard
        return t[rank * n:(rank + 1) * n]

    def _build_augment(self, cfg):
        a = cfg.augment
        if not (a.policy or a.noise > 0):
            return None
        from .augment import Augment
        return Augment(policy=a.policy, p=None if a.p < 0 else a.p, ada_target=a.ada_target, ada_interval=a.ada_interval,
                       ada_kimg=a.ada_kimg, noise=a.noise, noise_steps=a.noise_steps or cfg.train.steps,
                       batch_size=cfg.train.batch_size, generator=self.generator)

    # -- pieces -----------------------------------------------------------------------------
    def aug(self, x: Tensor, step: int) -> Tensor:
        return self.augment(x, step) if self.augment is not None else x

    def adv_d(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        if self.smooth > 0:
            return self.loss.d(real_logits=real_logits, fake_logits=fake_logits, smooth=self.smooth)
        return self.loss.d(real_logits=real_logits, fake_logits=fake_logits)

    def logit_stats(self, real_logits: Tensor, fake_logits: Tensor, prefix: str = "") -> dict:
        r, f = real_logits.detach().float().mean(), fake_logits.detach().float().mean()
        stats = {f"D{prefix}/real": r, f"D{prefix}/fake": f}
        if self.loss.probabilistic:
            stats[f"D{prefix}(x)"] = torch.sigmoid(real_logits.detach()).mean()
            stats[f"D{prefix}(G(z))"] = torch.sigmoid(fake_logits.detach()).mean()
        if self.loss.wasserstein_estimate:
            stats[f"W_estimate{prefix}"] = r - f
        return stats

    def penalty(self, critic, real: Tensor, fake: Tensor, d_step: int, stats: dict, prefix: str = "") -> Tensor:
        total = real.new_zeros(())
        if self.penalties and d_step % self.every == 0:
            b, world = real.shape[0], self.shard[1]
            for name, fn, weight in self.penalties:
                kw = {}
                if name in ("gp", "lp"):  # one interpolation coefficient per sample of the global batch
                    alpha = torch.rand(b * world, generator=self.generator, device=self.generator.device)
                    kw["alpha"] = self._rows(alpha, b).to(real.device, real.dtype)
                p = fn(critic=critic, real=real, fake=fake, generator=self.generator, **kw)
                total = total + weight * self.every * p
                stats[f"loss/D/{name}{prefix}"] = p.detach()
        return total

    def after_d_step(self, D: nn.Module) -> None:
        if self.clip > 0:
            clip_weights_(D, self.clip)

    def stats(self) -> dict:
        return self.augment.stats() if self.augment is not None else {}

    def state_dict(self) -> dict:
        return {"augment": self.augment.state_dict()} if self.augment is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.augment is not None and "augment" in state:
            self.augment.load_state_dict(state["augment"])

    # -- pictures ----------------------------------------------------------------------------
    def fixed_inputs(self, data, n: int, seed: int) -> dict:
        """CPU tensors that every sample picture of a run is made from."""
        raise NotImplementedError

    def preview(self, G, fixed: dict, device) -> tuple[Tensor, int | None]:
        """``(images or points, images per row)`` for a sample picture."""
        raise NotImplementedError

    # -- the loop's interface ------------------------------------------------------------------
    def d_loss(self, G, D, batch, *, d_step: int, keep_fake: bool = False):
        """D's loss on one batch -> ``(loss, stats, fake)``; ``fake`` keeps G's graph when
        ``keep_fake`` (so the G phase can reuse it instead of running G again)."""
        raise NotImplementedError

    def g_loss(self, G, D, batch, *, fake=None, step: int = 0):
        """G's loss -> ``(loss, stats)``; ``fake`` is the D phase's output when it was kept."""
        raise NotImplementedError


@OBJECTIVES.register("gan", help="G(z, y) vs D(x, y): unconditional, class- or image-conditional GANs")
class GANObjective(Objective):
    def __init__(self, cfg, *, generator, device="cpu", data=None):
        super().__init__(cfg, generator=generator, device=device, data=data)
        kind = getattr(data, "kind", "image")
        # y reaches the nets for class-conditional models and image-conditional data
        self.use_y = bool(cfg.model.conditional) or kind == "paired"
        self.latent = (cfg.model.latent, cfg.model.z_dim)
        self.aux = float(cfg.loss.terms.get("aux", 1.0 if cfg.model.conditional else 0.0))

    def generate(self, G: nn.Module, y: Tensor | None, n: int) -> Tensor:
        """G on ``n`` fresh latents (this process's rows of the global batch's draw) and ``y``."""
        z = None
        if self.latent[1] > 0:
            z = sample_latent(self.latent[0], n * self.shard[1], self.latent[1], generator=self.generator,
                              device=self.device)
            z = self._rows(z, n)  # (n, z_dim)
        return G(z, y)

    def fixed_inputs(self, data, n: int, seed: int) -> dict:
        g = torch.Generator().manual_seed(seed)
        if getattr(data, "kind", "") == "paired":  # input | output | target for 16 pairs
            x, y = data.preview(min(n, 16))
            return {"x": x, "y": y, "z": self._cpu_latent(x.shape[0], g)}
        if self.use_y:  # a class-by-sample grid: one row per class
            k = data.num_classes
            per = max(1, n // k)
            return {"z": self._cpu_latent(per * k, g), "y": torch.arange(k).repeat_interleave(per),
                    "nrow": per}
        return {"z": self._cpu_latent(n, g)}

    def _cpu_latent(self, n: int, g: torch.Generator) -> Tensor | None:
        return sample_latent(self.latent[0], n, self.latent[1], generator=g) if self.latent[1] > 0 else None

    def preview(self, G, fixed: dict, device):
        z = fixed["z"].to(device) if fixed.get("z") is not None else None
        y = fixed["y"].to(device) if fixed.get("y") is not None else None
        out = G(z, y).cpu()
        if "x" not in fixed:
            return out, fixed.get("nrow")
        cols = [as_image_like(fixed["y"], out), out, fixed["x"]]
        return torch.stack(cols, 1).flatten(0, 1), 12  # (3 * n, C, H, W), four triplets per row

    def _aux_loss(self, out, y: Tensor | None) -> Tensor | None:
        if isinstance(out, tuple) and y is not None and self.aux > 0:
            return F.cross_entropy(out[1], y)
        return None

    def d_loss(self, G, D, batch, *, d_step: int, keep_fake: bool = False):
        real, y = batch
        y = y if self.use_y else None
        with torch.set_grad_enabled(keep_fake):
            fake = self.generate(G, y, real.shape[0])  # (B, *shape)
        real_out = D(self.aug(real, d_step), y)
        fake_out = D(self.aug(fake.detach(), d_step), y)
        real_logits, fake_logits = _logits(real_out), _logits(fake_out)
        adv = self.adv_d(real_logits, fake_logits)
        stats = {"loss/D/adv": adv.detach(), **self.logit_stats(real_logits, fake_logits)}
        total = adv
        for name, out in (("real", real_out), ("fake", fake_out)):
            a = self._aux_loss(out, y)
            if a is not None:
                total = total + self.aux * a
                stats[f"loss/D/aux_{name}"] = a.detach()
        if self.augment is not None:
            self.augment.observe(real_logits.detach())
        total = total + self.penalty(lambda x: _logits(D(x, y)), real, fake, d_step, stats)
        stats["loss/D"] = total.detach()
        return total, stats, fake

    def g_loss(self, G, D, batch, *, fake=None, step: int = 0):
        real, y = batch
        y = y if self.use_y else None
        if fake is None:
            fake = self.generate(G, y, real.shape[0])
        out = D(self.aug(fake, step), y)
        adv = self.loss.g(fake_logits=_logits(out))
        loss = self.adv_weight * adv
        stats = {"loss/G/adv": adv.detach()}
        a = self._aux_loss(out, y)
        if a is not None:
            loss = loss + self.aux * a
            stats["loss/G/aux"] = a.detach()
        for name, w in self.terms.items():
            if name in SPECIAL_TERMS:
                continue
            t = TERMS.get(name)(fake=fake, real=real, y=y, G=G)
            loss = loss + w * t
            stats[f"loss/G/{name}"] = t.detach()
        stats["loss/G"] = loss.detach()
        return loss, stats


@OBJECTIVES.register("cycle", help="CycleGAN: G.ab / G.ba and D.a / D.b, cycle and identity L1, image pools")
class CycleObjective(Objective):
    """Zhu et al. 2017. The batch is ``(b, a)``: x from domain B, y from domain A. D's losses are
    halved as in the paper; each discriminator sees generated images through a history pool."""

    def __init__(self, cfg, *, generator, device="cpu", data=None):
        super().__init__(cfg, generator=generator, device=device, data=data)
        from .pool import ImagePool
        self.lambda_cycle = float(cfg.loss.terms.get("cycle", 10.0))
        self.lambda_identity = float(cfg.loss.terms.get("identity", 0.5))
        self.pools = {"a": ImagePool(cfg.loss.pool, generator=generator),
                      "b": ImagePool(cfg.loss.pool, generator=generator)}

    def translate(self, G, b: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        return G.ab(a), G.ba(b)  # fake_b (B, *shape), fake_a (B, *cond_shape)

    def d_loss(self, G, D, batch, *, d_step: int, keep_fake: bool = False):
        b, a = batch
        with torch.set_grad_enabled(keep_fake):
            fake_b, fake_a = self.translate(G, b, a)
        stats, total = {}, b.new_zeros(())
        for name, net, real, fake in (("b", D.b, b, fake_b), ("a", D.a, a, fake_a)):
            shown = self.pools[name].query(fake.detach())
            real_logits, fake_logits = net(self.aug(real, d_step)), net(self.aug(shown, d_step))
            adv = 0.5 * self.adv_d(real_logits, fake_logits)
            stats[f"loss/D/adv_{name}"] = adv.detach()
            stats.update(self.logit_stats(real_logits, fake_logits, prefix=f"_{name}"))
            total = total + adv + self.penalty(net, real, shown, d_step, stats, prefix=f"_{name}")
        stats["loss/D"] = total.detach()
        return total, stats, (fake_b, fake_a)

    def g_loss(self, G, D, batch, *, fake=None, step: int = 0):
        b, a = batch
        fake_b, fake_a = fake if fake is not None else self.translate(G, b, a)
        adv_b = self.loss.g(fake_logits=D.b(self.aug(fake_b, step)))
        adv_a = self.loss.g(fake_logits=D.a(self.aug(fake_a, step)))
        cycle = (G.ba(fake_b) - a).abs().mean() + (G.ab(fake_a) - b).abs().mean()
        loss = self.adv_weight * (adv_b + adv_a) + self.lambda_cycle * cycle
        stats = {"loss/G/adv_b": adv_b.detach(), "loss/G/adv_a": adv_a.detach(), "loss/G/cycle": cycle.detach()}
        if self.lambda_identity > 0 and a.shape[1:] == b.shape[1:]:
            identity = (G.ab(b) - b).abs().mean() + (G.ba(a) - a).abs().mean()
            loss = loss + self.lambda_cycle * self.lambda_identity * identity
            stats["loss/G/identity"] = identity.detach()
        stats["loss/G"] = loss.detach()
        return loss, stats

    def fixed_inputs(self, data, n: int, seed: int) -> dict:
        b, a = data.preview(min(n, 8))
        return {"b": b, "a": a}

    def preview(self, G, fixed: dict, device):
        a, b = fixed["a"].to(device), fixed["b"].to(device)
        ab, ba = G.ab(a), G.ba(b)
        rows = [a, ab, G.ba(ab), b, ba, G.ab(ba)]  # A, A->B, back to A; B, B->A, back to B
        like = rows[1]
        rows = [as_image_like(r, like) for r in rows]
        return torch.stack(rows, 1).flatten(0, 1).cpu(), 12  # two samples per row

    def state_dict(self) -> dict:
        return {**super().state_dict(), "pools": {k: p.state_dict() for k, p in self.pools.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for k, p in self.pools.items():
            if k in state.get("pools", {}):
                p.load_state_dict(state["pools"][k])


def as_image_like(img: Tensor, like: Tensor) -> Tensor:
    """``img`` resized (nearest) and converted to ``like``'s channels, to sit beside it in a grid."""
    img = img.to(like.device, like.dtype)
    if img.shape[1] != like.shape[1]:
        img = img.mean(1, keepdim=True).expand(-1, like.shape[1], -1, -1) if like.shape[1] in (1, 3) else img
    if img.shape[2:] != like.shape[2:]:
        img = F.interpolate(img, size=like.shape[2:], mode="nearest")
    return img


def build_objective(cfg, family_objective: str, *, generator, device, data) -> Objective:
    return OBJECTIVES.get(family_objective)(cfg, generator=generator, device=device, data=data)


__all__ = ["OBJECTIVES", "TERMS", "SPECIAL_TERMS", "Objective", "GANObjective", "CycleObjective",
           "build_objective", "term_names"]
