"""Kernel Inception Distance (KID, Bińkowski et al. 2018): the unbiased estimate of the squared
maximum mean discrepancy (MMD^2) between two feature sets under the polynomial kernel

    k(x, y) = (gamma <x, y> + coef0) ^ degree,    gamma = 1 / D by default,

averaged over random subsets. Pure maths on features; computed in float64.

Subsets are drawn exactly as torch-fidelity draws them: one ``numpy.random.RandomState(seed)``,
and for each subset ``choice(N1, m, replace=False)`` of the first set, then
``choice(N2, m, replace=False)`` of the second. ``kid_from_features(..., seed=s)`` therefore
uses the same subsets as torch-fidelity with ``rng_seed=s`` (its default seed is 2020, ours is 0);
NumPy keeps the legacy ``RandomState`` stream fixed across versions, so results are reproducible.
torchmetrics draws its subsets with the global ``torch.randperm`` instead; given the same subsets,
the per-subset value :func:`polynomial_mmd2` agrees with both.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from .fid import as_features

KID_MEAN = "kid_mean"  # result keys
KID_STD = "kid_std"


def polynomial_kernel(x: Tensor, y: Tensor, *, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> Tensor:
    """The kernel matrix (gamma x y^T + coef0) ^ degree, shape (N, M); gamma defaults to 1 / D."""
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef0) ** degree


def polynomial_mmd2(x, y, *, degree: int = 3, gamma: float | None = None,
                    coef0: float = 1.0) -> float:
    """Unbiased MMD^2 between samples x (m, D) and y (n, D) under the polynomial kernel.

        MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
                  - 2 sum_{i, j} k(x_i, y_j) / (m n)

    This is the per-subset value of KID (with m = n it is exactly the "unbiased" estimator of
    torch-fidelity and torchmetrics). Computed in float64; m, n >= 2.
    """
    x, y = as_features(x, "x"), as_features(y, "y")
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD^2 needs at least 2 samples per set, got {m} and {n}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    y = y.to(x.device)
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    kw = dict(degree=degree, gamma=gamma, coef0=coef0)
    k_xx = polynomial_kernel(x, x, **kw)
    k_yy = polynomial_kernel(y, y, **kw)
    k_xy = polynomial_kernel(x, y, **kw)
    off_xx = k_xx.sum() - k_xx.diagonal().sum()
    off_yy = k_yy.sum() - k_yy.diagonal().sum()
    value = off_xx / (m * (m - 1)) + off_yy / (n * (n - 1)) - 2.0 * k_xy.sum() / (m * n)
    return float(value)


def kid_subsets(n1: int, n2: int, *, num_subsets: int, subset_size: int, seed: int):
    """Yield ``num_subsets`` pairs of index tensors of ``subset_size`` samples each, drawn as
    torch-fidelity draws them."""
    rng = np.random.RandomState(seed)
    for _ in range(num_subsets):
        i1 = rng.choice(n1, subset_size, replace=False)
        i2 = rng.choice(n2, subset_size, replace=False)
        yield torch.from_numpy(i1), torch.from_numpy(i2)


def kid_from_features(features1, features2, *, num_subsets: int = 100, subset_size: int = 1000,
                      degree: int = 3, gamma: float | None = None, coef0: float = 1.0,
                      seed: int = 0) -> tuple[float, float]:
    """KID between two feature sets: mean and standard deviation of MMD^2 over random subsets.

    Args:
        features1, features2: shapes (N1, D) and (N2, D).
        num_subsets: number of subset pairs.
        subset_size: samples per subset; capped at min(N1, N2) with a warning (the references
            raise instead). At least 2 samples per set are needed.
        degree, gamma, coef0: the polynomial kernel (gamma defaults to 1 / D).
        seed: seed of the subset draws (see the module docstring).

    Returns:
        ``(mean, std)`` over subsets; std is the population standard deviation (ddof 0) as in
        torch-fidelity and torchmetrics. Values slightly below 0 are valid (unbiased estimator).
    """
    f1, f2 = as_features(features1, "features1"), as_features(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} vs {f2.shape[1]}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    n1, n2 = f1.shape[0], f2.shape[0]
    if min(n1, n2) < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {n1} and {n2}")
    if subset_size > min(n1, n2):
        warnings.warn(f"KID subset_size {subset_size} > number of samples ({n1}, {n2}); "
                      f"using subsets of {min(n1, n2)}", stacklevel=2)
        subset_size = min(n1, n2)
    if subset_size < 2:
        raise ValueError(f"KID subset_size must be >= 2, got {subset_size}")
    f2 = f2.to(f1.device)
    subsets = kid_subsets(n1, n2, num_subsets=num_subsets, subset_size=subset_size, seed=seed)
    mmds = torch.tensor([
        polynomial_mmd2(f1[i1.to(f1.device)], f2[i2.to(f1.device)],
                        degree=degree, gamma=gamma, coef0=coef0)
        for i1, i2 in subsets
    ], dtype=torch.float64)
    return float(mmds.mean()), float(mmds.std(correction=0))
