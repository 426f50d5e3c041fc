"""What every objective shares: the adversarial loss, D penalties, clipping, augmentation.

The loop calls :meth:`Objective.d_loss` ``n_critic`` times, then :meth:`Objective.g_loss` once.
``x`` in a batch ``(x, y)`` is what D should call real; ``y`` is what conditions the generator
(class labels, an input image, domain-A images, or None). Statistics are returned as detached
tensors keyed by hierarchical names (``loss/D/gp``); anything stateful is in :meth:`state_dict`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..losses import LOSSES
from ..regularizers import REGULARIZERS, clip_weights_


def _logits(out) -> Tensor:
    """D's adversarial logits from its output (ACGAN discriminators also return class logits)."""
    return out[0] if isinstance(out, tuple) else out


class Objective:
    """Shared by every objective: adversarial loss, D penalties, clipping, augmentation."""

    def __init__(self, cfg, *, generator: torch.Generator, device: torch.device | str = "cpu",
                 use_y: bool = False):
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
        self.use_y = use_y  # y reaches the nets (class labels, input images)
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
        from ..augment import Augment
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

    # -- the loop's interface ------------------------------------------------------------------
    def d_loss(self, G, D, batch, *, d_step: int, keep_fake: bool = False):
        """D's loss on one batch -> ``(loss, stats, fake)``; ``fake`` keeps G's graph when
        ``keep_fake`` (so the G phase can reuse it instead of running G again)."""
        raise NotImplementedError

    def g_loss(self, G, D, batch, *, fake=None, step: int = 0):
        """G's loss -> ``(loss, stats)``; ``fake`` is the D phase's output when it was kept."""
        raise NotImplementedError
