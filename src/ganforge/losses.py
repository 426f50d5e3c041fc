"""Adversarial losses as pure functions of the discriminator's raw outputs (logits / scores).

Sign convention: every function returns a scalar that its player **minimises**. ``real_logits``
are D's outputs on data, ``fake_logits`` on generated samples, before any sigmoid. Each loss is
registered as a pair (D loss, G loss) in :data:`LOSSES`.

With D(x) = sigmoid(logit), the value function of Goodfellow et al. (2014) is
V(D, G) = E[log D(x)] + E[log(1 - D(G(z)))]; D maximises it, so D minimises -V.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .registry import Registry


@dataclass(frozen=True)
class AdversarialLoss:
    d: Callable[..., Tensor]  # d(*, real_logits, fake_logits) -> scalar minimised by D
    g: Callable[..., Tensor]  # g(*, fake_logits) -> scalar minimised by G
    probabilistic: bool  # D's output is a logit of P(real) (sigmoid applies)
    wasserstein_estimate: bool  # mean(real) - mean(fake) estimates a distance worth logging


LOSSES = Registry("loss", check=lambda o: isinstance(o, AdversarialLoss))


# -- minimax / non-saturating (Goodfellow et al. 2014) --------------------------------------

def d_minimax(*, real_logits: Tensor, fake_logits: Tensor, smooth: float = 0.0) -> Tensor:
    """-V(D, G) = -E[log sigmoid(r)] - E[log(1 - sigmoid(f))] = E[softplus(-r)] + E[softplus(f)].

    ``smooth`` > 0 is one-sided label smoothing (Salimans et al. 2016): the real target becomes
    1 - smooth, i.e. the real term is the cross-entropy (1 - s) softplus(-r) + s softplus(r);
    fake targets stay 0.
    """
    real_term = F.softplus(-real_logits)
    if smooth:
        real_term = (1.0 - smooth) * real_term + smooth * F.softplus(real_logits)
    return real_term.mean() + F.softplus(fake_logits).mean()


def g_minimax(*, fake_logits: Tensor) -> Tensor:
    """The saturating generator loss E[log(1 - D(G(z)))] = -E[softplus(f)] (exactly V's G term)."""
    return -F.softplus(fake_logits).mean()


def g_nonsaturating(*, fake_logits: Tensor) -> Tensor:
    """The non-saturating generator loss -E[log D(G(z))] = E[softplus(-f)]."""
    return F.softplus(-fake_logits).mean()


# -- Wasserstein (Arjovsky et al. 2017) ----------------------------------------------------

def d_wasserstein(*, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The critic minimises E[C(G(z))] - E[C(x)] (maximising the Wasserstein estimate)."""
    return fake_logits.mean() - real_logits.mean()


def g_wasserstein(*, fake_logits: Tensor) -> Tensor:
    """The generator minimises -E[C(G(z))]."""
    return -fake_logits.mean()


# -- hinge (Lim & Ye 2017; Miyato et al. 2018) ---------------------------------------------

def d_hinge(*, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


# -- least squares (Mao et al. 2017, a=0, b=1, c=1) ----------------------------------------

def d_least_squares(*, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]."""
    return 0.5 * (real_logits - 1.0).pow(2).mean() + 0.5 * fake_logits.pow(2).mean()


def g_least_squares(*, fake_logits: Tensor) -> Tensor:
    """1/2 E[(D(G(z)) - 1)^2]."""
    return 0.5 * (fake_logits - 1.0).pow(2).mean()


LOSSES.register("minimax", help="saturating minimax game, exactly V(D, G) (Goodfellow 2014)")(
    AdversarialLoss(d_minimax, g_minimax, probabilistic=True, wasserstein_estimate=False))
LOSSES.register("ns", help="non-saturating: D as minimax, G minimises -log D(G(z))")(
    AdversarialLoss(d_minimax, g_nonsaturating, probabilistic=True, wasserstein_estimate=False))
LOSSES.register("wasserstein", help="WGAN critic loss; needs clipping or a gradient penalty")(
    AdversarialLoss(d_wasserstein, g_wasserstein, probabilistic=False, wasserstein_estimate=True))
LOSSES.register("hinge", help="hinge loss for D, -E[D(G(z))] for G")(
    AdversarialLoss(d_hinge, g_wasserstein, probabilistic=False, wasserstein_estimate=True))
LOSSES.register("ls", help="least squares (LSGAN, a=0, b=1, c=1)")(
    AdversarialLoss(d_least_squares, g_least_squares, probabilistic=False, wasserstein_estimate=False))


def d_probability(logits: Tensor, loss: AdversarialLoss) -> Tensor:
    """D's output as a probability of 'real' for probabilistic losses, the raw score otherwise."""
    return torch.sigmoid(logits) if loss.probabilistic else logits


def validate_config(cfg) -> None:
    """The loss section's adversarial loss and label smoothing."""
    from .errors import ConfigError
    LOSSES.check("loss.name", cfg.loss.name)
    if cfg.loss.smooth and not LOSSES.get(cfg.loss.name).probabilistic:
        raise ConfigError(f"loss.smooth: label smoothing needs a probabilistic loss (minimax, ns), "
                          f"not '{cfg.loss.name}'")
