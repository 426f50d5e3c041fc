"""StarGAN's objective (Choi et al. 2018, eq. 1-6): one G(x, c) translating to any domain c, one D
returning (realism logits, domain logits).

The batch is ``(x, c)``: images and their own domains (class indices (B,) or multi-hot attributes
(B, K) float). Each step draws target domains (uniform classes, or independent fair attributes)
from the objective's generator, so resume and several processes draw what one process would.

- D minimises ``adv(D(x), D(G(x, c_trg))) + cls * domain_loss(D_cls(x), c)`` (+ penalties; the
  paper: WGAN-GP, lambda_gp 10);
- G minimises ``adv_weight * adv_G(D(G(x, c_trg))) + cls * domain_loss(D_cls(G(x, c_trg)), c_trg)
  + rec * |x - G(G(x, c_trg), c)|_1``; ``loss.terms.cls`` (1) and ``loss.terms.rec`` (10).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..losses_stargan import domain_classification_loss, reconstruction_loss
from .base import Objective


class StarObjective(Objective):
    def __init__(self, cfg, *, generator, device="cpu", use_y: bool = True):
        super().__init__(cfg, generator=generator, device=device, use_y=True)
        self.lambda_cls = float(cfg.loss.terms.get("cls", 1.0))
        self.lambda_rec = float(cfg.loss.terms.get("rec", 10.0))

    def targets(self, c: Tensor, num_domains: int) -> Tensor:
        """Random target domains for a batch of source domains ``c`` (this process's rows)."""
        b, world = c.shape[0], self.shard[1]
        dev = self.generator.device
        if c.is_floating_point():  # attributes: each present with probability 1/2
            t = torch.randint(0, 2, (b * world, c.shape[1]), generator=self.generator, device=dev).float()
        else:
            t = torch.randint(0, num_domains, (b * world,), generator=self.generator, device=dev)
        return self._rows(t, b).to(c.device)

    @staticmethod
    def _domains(D) -> int:
        return getattr(D, "module", D).num_domains

    def d_loss(self, G, D, batch, *, d_step: int, keep_fake: bool = False):
        real, c = batch
        c_trg = self.targets(c, self._domains(D))
        with torch.set_grad_enabled(keep_fake):
            fake = G(real, c_trg)  # (B, C, H, W)
        real_adv, real_cls = D(self.aug(real, d_step))
        fake_adv, _ = D(self.aug(fake.detach(), d_step))
        adv = self.adv_d(real_adv, fake_adv)
        cls = domain_classification_loss(logits=real_cls, target=c)
        total = adv + self.lambda_cls * cls
        stats = {"loss/D/adv": adv.detach(), "loss/D/cls": cls.detach(), **self.logit_stats(real_adv, fake_adv)}
        if self.augment is not None:
            self.augment.observe(real_adv.detach())
        total = total + self.penalty(lambda x: D(x)[0], real, fake, d_step, stats)
        stats["loss/D"] = total.detach()
        return total, stats, (fake, c_trg)

    def g_loss(self, G, D, batch, *, fake=None, step: int = 0):
        real, c = batch
        if fake is None:
            c_trg = self.targets(c, self._domains(D))
            fake = G(real, c_trg)
        else:
            fake, c_trg = fake
        fake_adv, fake_cls = D(self.aug(fake, step))
        adv = self.loss.g(fake_logits=fake_adv)
        cls = domain_classification_loss(logits=fake_cls, target=c_trg)
        rec = reconstruction_loss(real=real, reconstructed=G(fake, c))
        loss = self.adv_weight * adv + self.lambda_cls * cls + self.lambda_rec * rec
        stats = {"loss/G/adv": adv.detach(), "loss/G/cls": cls.detach(), "loss/G/rec": rec.detach(),
                 "loss/G": loss.detach()}
        return loss, stats


__all__ = ["StarObjective"]
