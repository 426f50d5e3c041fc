"""CycleGAN's objective: two generators (G.ab, G.ba) and two discriminators (D.a, D.b)."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Objective


class CycleObjective(Objective):
    """Zhu et al. 2017. The batch is ``(b, a)``: x from domain B, y from domain A. D's losses are
    halved as in the paper; each discriminator sees generated images through a history pool.
    ``loss.terms.style`` adds the Gram style loss of each translation against the (unpaired) real
    batch of its target domain; the other G-side terms need aligned targets and do not apply."""

    def __init__(self, cfg, *, generator, device="cpu", use_y: bool = True):
        super().__init__(cfg, generator=generator, device=device, use_y=True)
        from ..pool import ImagePool
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
        style = self.terms.get("style", 0.0)
        if style > 0:  # the domains' styles: Gram statistics of the translations against real images of their domain
            from .terms import TERMS
            t = TERMS.get("style")(fake=fake_b, real=b) + TERMS.get("style")(fake=fake_a, real=a)
            loss = loss + style * t
            stats["loss/G/style"] = t.detach()
        stats["loss/G"] = loss.detach()
        return loss, stats

    def state_dict(self) -> dict:
        return {**super().state_dict(), "pools": {k: p.state_dict() for k, p in self.pools.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for k, p in self.pools.items():
            if k in state.get("pools", {}):
                p.load_state_dict(state["pools"][k])
