"""Toy distributions: a 1-D Gaussian mixture and the 2-D ring8 / grid25 mixtures.

ring8 and grid25 follow the PacGAN / VEEGAN protocol (docs/protocols.md section 1):

- ring8: 8 Gaussians with means (cos 2*pi*k/8, sin 2*pi*k/8), k = 0..7, std 0.01;
- grid25: 25 Gaussians with means on {-4, -2, 0, 2, 4}^2, std 0.05.

Samples are drawn fresh for every batch from a seeded generator (an infinite dataset).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import DataSource


@dataclass(frozen=True)
class Mixture:
    """An equal-weight isotropic Gaussian mixture."""

    name: str
    means: Tensor  # (K, D)
    std: float

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        k = torch.randint(0, len(self.means), (n,), generator=generator)
        x = self.means[k] + self.std * torch.randn(n, self.dim, generator=generator)
        return x, k

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) for x of shape (N, D)."""
        d2 = torch.cdist(x.double(), self.means.double()).pow(2)  # (N, K)
        log_norm = -0.5 * self.dim * math.log(2 * math.pi * self.std ** 2)
        return torch.logsumexp(-d2 / (2 * self.std ** 2) + log_norm, dim=1) - math.log(len(self.means))


def ring8() -> Mixture:
    k = torch.arange(8, dtype=torch.float64)  # not linspace(0, 2pi, 8), which repeats a mode
    means = torch.stack([torch.cos(2 * math.pi * k / 8), torch.sin(2 * math.pi * k / 8)], 1)
    return Mixture("ring8", means.float(), 0.01)


def grid25() -> Mixture:
    v = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    means = torch.cartesian_prod(v, v)
    return Mixture("grid25", means, 0.05)


def gauss1d() -> Mixture:
    """The 1-D example: a mixture of two Gaussians at -2 and 2, std 0.5."""
    return Mixture("gauss1d", torch.tensor([[-2.0], [2.0]]), 0.5)


MIXTURES = {"ring8": ring8, "grid25": grid25, "gauss1d": gauss1d}


class MixtureSource(DataSource):
    """Fresh samples from a :class:`Mixture` on every call; labels are the mode indices."""

    def __init__(self, mixture: Mixture, *, seed: int = 0):
        self.mixture = mixture
        self.shape = (mixture.dim,)
        self.num_classes = 0
        self.description = f"{mixture.name}: {len(mixture.means)} Gaussians, std {mixture.std}"
        self._gen = torch.Generator().manual_seed(int(seed))

    def next(self, n: int):
        x, _ = self.mixture.sample(n, self._gen)
        return x, None

    def preview(self, n: int):
        x, _ = self.mixture.sample(n, torch.Generator().manual_seed(0))
        return x, None

    def state_dict(self) -> dict:
        return {"gen": self._gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self._gen.set_state(state["gen"])


def _mixture_modes(name: str):
    def modes(sample_fn, n: int, seed: int = 0) -> dict:
        from ..metrics.modes import mode_metrics
        m = MIXTURES[name]()
        return mode_metrics(sample_fn(n, seed), m.means, m.std)
    return modes


def _register() -> None:
    from .registry import DATASETS, Dataset
    helps = {"gauss1d": "1-D mixture of two Gaussians (means -2, 2; std 0.5)",
             "ring8": "8 Gaussians on the unit circle, std 0.01 (PacGAN/VEEGAN)",
             "grid25": "25 Gaussians on {-4,-2,0,2,4}^2, std 0.05 (PacGAN/VEEGAN)"}
    for name, text in helps.items():
        DATASETS.register(name)(Dataset(
            build=lambda cfg, path, name=name: MixtureSource(MIXTURES[name](), seed=cfg.seed),
            task="generate", help=text, modes=_mixture_modes(name)))


_register()
