"""The GAN objective: an adversarial loss plus regularizers, as seen by the training loop.

The loop hands real and generated batches to :meth:`GANObjective.d_loss` / :meth:`g_loss` and
calls :meth:`after_d_step` after each D update; it never needs to know which GAN it trains.
Statistics are returned as detached tensors keyed by hierarchical names (``loss/D/gp``), so the
loop reads scalars only at log steps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .losses import LOSSES
from .regularizers import REGULARIZERS, clip_weights_


class GANObjective:
    def __init__(self, loss_cfg, *, generator: torch.Generator | None = None):
        self.name = loss_cfg.name
        self.loss = LOSSES.get(loss_cfg.name)
        self.penalties = [(n, REGULARIZERS.get(n), float(w)) for n, w in loss_cfg.penalties.items()
                          if float(w) > 0]
        self.every = int(loss_cfg.penalty_every)
        self.clip = float(loss_cfg.clip)
        self.generator = generator  # for the interpolation coefficients of GP / LP

    def d_loss(self, D: nn.Module, real: Tensor, fake: Tensor, *, y: Tensor | None = None,
               d_step: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        """D's loss on a real and a (detached) fake batch; ``d_step`` schedules lazy penalties."""
        real_logits = D(real, y)  # (B,)
        fake_logits = D(fake.detach(), y)  # (B,)
        adv = self.loss.d(real_logits=real_logits, fake_logits=fake_logits)
        total = adv
        stats = {"loss/D/adv": adv.detach(),
                 "D/real": real_logits.detach().mean(), "D/fake": fake_logits.detach().mean()}
        if self.loss.probabilistic:
            stats["D(x)"] = torch.sigmoid(real_logits.detach()).mean()
            stats["D(G(z))"] = torch.sigmoid(fake_logits.detach()).mean()
        if self.loss.wasserstein_estimate:
            stats["W_estimate"] = stats["D/real"] - stats["D/fake"]
        if self.penalties and d_step % self.every == 0:
            critic = (lambda x: D(x, y))
            for name, fn, weight in self.penalties:
                p = fn(critic=critic, real=real, fake=fake, generator=self.generator)
                total = total + weight * self.every * p
                stats[f"loss/D/{name}"] = p.detach()
        stats["loss/D"] = total.detach()
        return total, stats

    def g_loss(self, D: nn.Module, fake: Tensor, *, y: Tensor | None = None
               ) -> tuple[Tensor, dict[str, Tensor]]:
        fake_logits = D(fake, y)
        loss = self.loss.g(fake_logits=fake_logits)
        return loss, {"loss/G": loss.detach()}

    def after_d_step(self, D: nn.Module) -> None:
        if self.clip > 0:
            clip_weights_(D, self.clip)
