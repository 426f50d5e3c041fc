"""The semi-supervised GAN objective (Salimans et al. 2016, sec. 5): D is a K-class classifier with
an implicit (K+1)-th class "generated" (logit 0); G learns by feature matching.

The batch is ``(x, x_labelled, y_labelled)`` (:class:`ganforge.data.labelled.SemiSupervisedSource`):
unlabelled real samples and as many labelled ones. D's output is ``(class logits (B, K), features
(B, F))`` (:class:`ganforge.nets.ssl.SSLDiscriminator`). The losses are :mod:`ganforge.losses_ssl`:

- D: ``ssl_supervised(labelled) + unsup * ssl_unsupervised(x, G(z))`` (``loss.terms.unsup``, 1);
- G: ``fm * feature_matching(f(x), f(G(z)))`` (``loss.terms.fm``, 1); with fm = 0 the
  non-saturating ``-log D(G(z))`` instead.

``loss.name`` plays no part (the K+1 parametrisation fixes the adversarial loss); D penalties
(``loss.penalties``) act on the real/fake logit ``logsumexp(l)``.
"""

from __future__ import annotations

import torch

from ..losses_ssl import feature_matching, real_logit, ssl_g_nonsaturating, ssl_supervised, ssl_unsupervised
from ..nets import sample_latent
from .base import Objective


class SSLObjective(Objective):
    def __init__(self, cfg, *, generator, device="cpu", use_y: bool = False):
        super().__init__(cfg, generator=generator, device=device, use_y=False)
        self.unsup = float(cfg.loss.terms.get("unsup", 1.0))
        self.fm = float(cfg.loss.terms.get("fm", 1.0))
        self.latent = (cfg.model.latent, cfg.model.z_dim)

    def generate(self, G, n: int):
        z = sample_latent(self.latent[0], n * self.shard[1], self.latent[1], generator=self.generator,
                          device=self.device)
        return G(self._rows(z, n), None)  # (n, C, H, W)

    def d_loss(self, G, D, batch, *, d_step: int, keep_fake: bool = False):
        x, x_lab, y_lab = batch
        with torch.set_grad_enabled(keep_fake):
            fake = self.generate(G, x.shape[0])
        lab_logits, _ = D(self.aug(x_lab, d_step))
        real_logits, _ = D(self.aug(x, d_step))
        fake_logits, _ = D(self.aug(fake.detach(), d_step))
        sup = ssl_supervised(logits=lab_logits, labels=y_lab)
        unsup = ssl_unsupervised(real_logits=real_logits, fake_logits=fake_logits)
        total = sup + self.unsup * unsup
        stats = {"loss/D/sup": sup.detach(), "loss/D/unsup": unsup.detach(),
                 "acc/labelled": (lab_logits.detach().argmax(1) == y_lab).float().mean(),
                 **self.logit_stats(real_logit(real_logits.detach()), real_logit(fake_logits.detach()))}
        if self.augment is not None:
            self.augment.observe(real_logit(real_logits.detach()))
        total = total + self.penalty(lambda v: real_logit(D(v)[0]), x, fake, d_step, stats)
        stats["loss/D"] = total.detach()
        return total, stats, fake

    def g_loss(self, G, D, batch, *, fake=None, step: int = 0):
        x = batch[0]
        if fake is None:
            fake = self.generate(G, x.shape[0])
        fake_logits, fake_feats = D(self.aug(fake, step))
        if self.fm > 0:
            with torch.no_grad():
                _, real_feats = D(self.aug(x, step))
            fm = feature_matching(real_features=real_feats, fake_features=fake_feats)
            loss, stats = self.fm * fm, {"loss/G/fm": fm.detach()}
        else:
            loss = ssl_g_nonsaturating(fake_logits=fake_logits)
            stats = {"loss/G/adv": loss.detach()}
        stats["loss/G"] = loss.detach()
        return loss, stats


__all__ = ["SSLObjective"]
