"""Fréchet distance between Gaussians fitted to two feature sets (FID, Heusel et al. 2017).

    FID = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

Pure maths on features or on their statistics: no networks, no sampling, no I/O.

The trace of the matrix square root is computed without ``scipy.linalg.sqrtm`` (whose iterative
result can carry imaginary parts and loses accuracy on near-singular products) and without the
eigenvalues of the non-symmetric product ``S1 S2`` (what torchmetrics and torch-fidelity use).
``S1 S2`` is similar to the symmetric PSD matrix ``M = S1^(1/2) S2 S1^(1/2)``, so

    tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(M)),

and both square roots come from ``torch.linalg.eigh`` in float64, with the tiny negative
eigenvalues that rounding produces clamped to 0.

Statistics are accumulated by :class:`FeatureStats` in float64 (count, sum, sum of outer
products), so FID never needs the features stored and its value does not depend on how the
features were batched (up to float64 rounding).
"""

from __future__ import annotations

import torch
from torch import Tensor

FID = "fid"  # result key


def as_features(x, name: str = "features") -> Tensor:
    """``x`` (a tensor or array-like) as a 2-D float64 tensor of shape (N, D), on its device."""
    x = torch.as_tensor(x)
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(x.shape)}")
    return x.to(torch.float64)


def _sym_sqrt(s: Tensor) -> Tensor:
    """The PSD square root of a symmetric matrix (negative eigenvalues from rounding -> 0)."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2, via the eigenvalues of S1^(1/2) S2 S1^(1/2)."""
    r = _sym_sqrt(sigma1)
    m = r @ sigma2 @ r
    m = 0.5 * (m + m.T)  # exactly symmetric for eigh
    return torch.linalg.eigvalsh(m).clamp_min(0).sqrt().sum()


def fid_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed in float64.

    Args:
        mu1, mu2: means, shape (D,).
        sigma1, sigma2: covariance matrices, shape (D, D), symmetric positive semi-definite
            (they are symmetrised as (S + S^T) / 2 to remove rounding asymmetry).

    Returns:
        The FID as a Python float (>= 0 up to rounding).
    """
    mu1, sigma1 = torch.as_tensor(mu1).to(torch.float64), torch.as_tensor(sigma1).to(torch.float64)
    device = mu1.device
    mu2 = torch.as_tensor(mu2).to(dtype=torch.float64, device=device)
    sigma2 = torch.as_tensor(sigma2).to(dtype=torch.float64, device=device)
    sigma1 = sigma1.to(device)
    d = mu1.shape[0] if mu1.dim() == 1 else -1
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            "expected mu1, mu2 of shape (D,) and sigma1, sigma2 of shape (D, D), got "
            f"{tuple(mu1.shape)}, {tuple(mu2.shape)}, {tuple(sigma1.shape)}, {tuple(sigma2.shape)}"
        )
    for name, t in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    sigma1 = 0.5 * (sigma1 + sigma1.T)
    sigma2 = 0.5 * (sigma2 + sigma2.T)
    diff = mu1 - mu2
    value = diff @ diff + sigma1.trace() + sigma2.trace() - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(value)


class FeatureStats:
    """Streaming mean and covariance of features, accumulated in float64.

    Holds the count N, the sum of features s = sum_i x_i and the sum of outer products
    P = sum_i x_i x_i^T, so that

        mean = s / N,    cov = (P - N mean mean^T) / (N - 1)    (unbiased, like ``numpy.cov``).

    Example::

        stats = FeatureStats()
        for batch in batches:          # (B, D) each
            stats.update(batch)
        mu, sigma = stats.mean(), stats.cov()

    The one-pass formula loses about log10((|mean| / std)^2) of float64's ~16 significant digits
    to cancellation, which is negligible for network features (|mean| of the order of std).

    ``state_dict()`` returns plain tensors (safe to cache with ``safetensors`` or ``torch.save``);
    :meth:`from_state_dict` rebuilds the accumulator.
    """

    def __init__(self, num_features: int | None = None, *,
                 device: torch.device | str | None = None):
        self.count = 0
        self.sum: Tensor | None = None  # (D,)
        self.outer_sum: Tensor | None = None  # (D, D)
        if num_features is not None:
            self._allocate(int(num_features), torch.device(device) if device is not None else None)

    def _allocate(self, d: int, device) -> None:
        self.sum = torch.zeros(d, dtype=torch.float64, device=device)
        self.outer_sum = torch.zeros(d, d, dtype=torch.float64, device=device)

    @property
    def num_features(self) -> int | None:
        return None if self.sum is None else self.sum.shape[0]

    @torch.no_grad()
    def update(self, features) -> "FeatureStats":
        """Add a batch of features of shape (B, D) (any float dtype; accumulated in float64)."""
        x = as_features(features)  # (B, D)
        if self.sum is None:
            self._allocate(x.shape[1], x.device)
        elif x.shape[1] != self.sum.shape[0]:
            raise ValueError(f"expected {self.sum.shape[0]} features per sample, got {x.shape[1]}")
        x = x.to(self.sum.device)
        self.count += x.shape[0]
        self.sum += x.sum(dim=0)
        self.outer_sum += x.T @ x
        return self

    def mean(self) -> Tensor:
        """Mean of all features seen, shape (D,), float64."""
        if self.count < 1:
            raise ValueError("FeatureStats is empty: call update() first")
        return self.sum / self.count

    def cov(self) -> Tensor:
        """Unbiased (N - 1) covariance of all features seen, shape (D, D), float64."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 samples, got {self.count}")
        mu = self.mean()
        c = (self.outer_sum - self.count * torch.outer(mu, mu)) / (self.count - 1)
        return 0.5 * (c + c.T)

    def state_dict(self) -> dict[str, Tensor]:
        """``{"count": int64 scalar, "sum": (D,), "outer_sum": (D, D)}``, all tensors."""
        if self.sum is None:
            raise ValueError("FeatureStats is empty: nothing to save")
        return {
            "count": torch.tensor(self.count, dtype=torch.int64),
            "sum": self.sum.clone(),
            "outer_sum": self.outer_sum.clone(),
        }

    @classmethod
    def from_state_dict(cls, state: dict, *,
                        device: torch.device | str | None = None) -> "FeatureStats":
        """Rebuild the accumulator saved by :meth:`state_dict`."""
        s = torch.as_tensor(state["sum"]).to(dtype=torch.float64, device=device)
        p = torch.as_tensor(state["outer_sum"]).to(dtype=torch.float64, device=device)
        d = s.shape[0] if s.dim() == 1 else -1
        if s.dim() != 1 or p.shape != (d, d):
            raise ValueError(f"inconsistent FeatureStats state: sum {tuple(s.shape)}, "
                             f"outer_sum {tuple(p.shape)}")
        out = cls()
        out.count = int(state["count"])
        out.sum, out.outer_sum = s, p
        return out

    def __repr__(self) -> str:
        return f"FeatureStats(count={self.count}, num_features={self.num_features})"


def fid_from_feature_stats(stats1: FeatureStats, stats2: FeatureStats) -> float:
    """FID between the Gaussians fitted by two :class:`FeatureStats` accumulators."""
    return fid_from_stats(stats1.mean(), stats1.cov(), stats2.mean(), stats2.cov())


def fid_from_features(features1, features2) -> float:
    """FID between two feature sets of shapes (N1, D) and (N2, D) (N1, N2 >= 2)."""
    f1, f2 = as_features(features1, "features1"), as_features(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} vs {f2.shape[1]}")
    return fid_from_feature_stats(FeatureStats().update(f1), FeatureStats().update(f2))
