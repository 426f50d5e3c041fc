"""The GAN objective: G(z, y) against D(x, y)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nets import sample_latent
from .base import Objective, _logits
from .terms import TERMS


class GANObjective(Objective):
    """G(z, y) against D(x, y): unconditional, class-conditional (concat, projection, ACGAN) and
    image-conditional GANs (pix2pix, super-resolution), with D penalties, augmentation, label
    smoothing and G-side terms (:mod:`.terms`)."""

    def __init__(self, cfg, *, generator, device="cpu", use_y: bool = False):
        super().__init__(cfg, generator=generator, device=device, use_y=use_y)
        # StyleGAN2's lazy path-length regularisation (style-based generators): weight, interval, running mean
        self.pl_weight, self.pl_every = float(cfg.loss.terms.get("pl", 0.0)), int(cfg.loss.pl_every)
        self.pl_mean = torch.zeros((), device=self.device)
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
            if name not in TERMS:  # read by the objective itself (aux)
                continue
            t = TERMS.get(name)(fake=fake, real=real, y=y, G=G)
            loss = loss + w * t
            stats[f"loss/G/{name}"] = t.detach()
        if self.pl_weight > 0 and step % self.pl_every == 0:
            loss = loss + self.pl_weight * self.pl_every * self._path_length(G, y, real.shape[0], stats)
        stats["loss/G"] = loss.detach()
        return loss, stats

    def _path_length(self, G, y, n: int, stats: dict) -> Tensor:
        """The path-length penalty on half the G batch (Karras et al. 2020). Under DDP it runs on the
        local net, so its gradient is not averaged across processes."""
        from ..pathlength import generator_path_length
        half = max(1, n // 2)
        z = self._rows(sample_latent(self.latent[0], half * self.shard[1], self.latent[1], generator=self.generator,
                                     device=self.device), half)
        pen, self.pl_mean, _ = generator_path_length(getattr(G, "module", G), z, None if y is None else y[:half],
                                                     pl_mean=self.pl_mean, generator=self.generator)
        stats["loss/G/pl"] = pen.detach()
        return pen

    def state_dict(self) -> dict:
        return {**super().state_dict(), "pl_mean": self.pl_mean.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "pl_mean" in state:
            self.pl_mean = state["pl_mean"].to(self.device)
