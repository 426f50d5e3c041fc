"""Improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage
(Naeem et al. 2020) from k-nearest-neighbour balls in feature space.

With NND_k(x) the distance from x to its k-th nearest neighbour within its own set:

- precision = fraction of fake samples inside at least one real ball B(r, NND_k(r));
- recall    = fraction of real samples inside at least one fake ball B(f, NND_k(f));
- density   = (1 / k) * mean over fakes of the number of real balls containing the fake;
- coverage  = fraction of real samples whose ball contains at least one fake.

This follows the ``prdc`` package (Naeem et al.'s reference, ``compute_prdc``):

- "inside" is a strict ``distance < radius``;
- the radius is the (k+1)-th smallest entry of a sample's row of distances to its own set,
  a row that includes the sample itself at distance 0, so it is the distance to the k-th nearest
  *other* sample (a duplicate of the sample counts as a neighbour at distance 0);
- distances are computed the way scikit-learn's ``pairwise_distances(metric="euclidean")``
  computes them: d^2 = (-2 <x, y> + |x|^2) + |y|^2 in float64, clamped at 0, and a sample's
  distance to itself set to exactly 0. For two float32 inputs scikit-learn rounds d^2 to float32
  before the square root, which creates ties the float64 values do not have; this is reproduced
  (distances are float32 when both sets are float32, float64 otherwise).

The results are therefore identical to ``compute_prdc`` whenever its own result is determined by
the data: whenever the float64 arithmetic is exact (integer-valued or coarsely quantised features,
the usual source of ties and duplicates), and otherwise up to the last bit of a dot product, which
matters only at an exact tie. One deliberate difference: *exact duplicate* rows (within or across
the two sets) are at distance exactly 0 here, like a sample and itself. scikit-learn gives them
rounding noise instead (about sqrt(eps) |x|, positive or clamped to 0 depending on the BLAS
library's summation order), so on duplicated non-integer features the result of ``compute_prdc``
depends on that noise; here duplicates are handled exactly, the same way on every machine and
for every chunk size.

The prdc package uses one k for all four numbers. The protocol here uses k = 3 for precision and
recall and k = 5 for density and coverage, so :func:`prdc` takes ``pr_nearest_k`` (default: the
same as ``nearest_k``) and computes all four from one pass over the distances.

The distance matrices are never held whole: they are computed in row chunks (about 256 MB of
float64 each by default), so 10k x 10k samples fit in well under a few GB.
"""

from __future__ import annotations

import torch
from torch import Tensor

PRECISION = "precision"  # result keys
RECALL = "recall"
DENSITY = "density"
COVERAGE = "coverage"

_CHUNK_ELEMENTS = 2 ** 25  # entries of a distance chunk: 256 MB in float64


def _as_points(x, name: str) -> Tensor:
    """``x`` as a 2-D floating tensor; float32 stays float32 (see the module docstring), anything
    else becomes float64, as scikit-learn's ``check_pairwise_arrays`` does."""
    x = torch.as_tensor(x)
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(x.shape)}")
    if x.dtype != torch.float32:
        x = x.to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


class _Points:
    """A point set prepared for distance computations: float64 copy, squared norms, original
    dtype, and an id per row that is shared by all bitwise-equal rows of both sets."""

    def __init__(self, x: Tensor, ids: Tensor):
        self.dtype = x.dtype
        self.x64 = x.to(torch.float64)  # (N, D)
        self.sq_norms = (self.x64 * self.x64).sum(dim=1)  # (N,)
        self.ids = ids  # (N,) int64

    def __len__(self) -> int:
        return self.x64.shape[0]


def _prepare(real: Tensor, fake: Tensor) -> tuple[_Points, _Points]:
    both = torch.cat([real.to(torch.float64), fake.to(torch.float64)])  # (N_real + N_fake, D)
    _, ids = torch.unique(both, dim=0, return_inverse=True)
    return _Points(real, ids[: len(real)]), _Points(fake, ids[len(real):])


def _distances(a: _Points, rows: slice, b: _Points) -> Tensor:
    """Euclidean distances from ``a[rows]`` to all of ``b`` as scikit-learn computes them, except
    that equal rows (a sample and itself, or exact duplicates) are at distance exactly 0."""
    d2 = -2.0 * (a.x64[rows] @ b.x64.T)  # (c, N_b), float64
    d2 += a.sq_norms[rows, None]
    d2 += b.sq_norms[None, :]
    both_float32 = a.dtype == torch.float32 and b.dtype == torch.float32
    out_dtype = torch.float32 if both_float32 else torch.float64
    d2 = d2.to(out_dtype).clamp_min_(0)
    d2.masked_fill_(a.ids[rows, None] == b.ids[None, :], 0)
    return d2.sqrt_()


def _chunks(n_rows: int, n_cols: int, chunk_size: int | None):
    step = chunk_size or max(1, _CHUNK_ELEMENTS // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _kth_radii(points: _Points, k: int, chunk_size: int | None) -> Tensor:
    """The (k+1)-th smallest distance of every sample to its own set (itself included), (N,)."""
    return torch.cat([torch.kthvalue(_distances(points, rows, points), k + 1, dim=1).values
                      for rows in _chunks(len(points), len(points), chunk_size)])


def _check_k(k: int, n: int, what: str, name: str) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    if k >= n:
        raise ValueError(f"{name}={k} needs more than {k} {what} samples, got {n}")


def prdc(real_features, fake_features, *, nearest_k: int = 5, pr_nearest_k: int | None = None,
         chunk_size: int | None = None) -> dict[str, float]:
    """Precision, recall, density and coverage of fake features against real features.

    Args:
        real_features: (N_real, D) real-sample features (tensor or array-like).
        fake_features: (N_fake, D) generated-sample features.
        nearest_k: k of the k-NN balls for density and coverage (and for precision and recall
            when ``pr_nearest_k`` is None), as in ``prdc.compute_prdc(..., nearest_k)``.
        pr_nearest_k: k for precision and recall, if different (the protocol uses 3).
        chunk_size: rows per distance chunk (default: about 2^25 distances per chunk).

    Returns:
        ``{"precision", "recall", "density", "coverage"}`` as Python floats, equal to
        ``prdc.compute_prdc`` (when ``pr_nearest_k == nearest_k``); see the module docstring.
    """
    real_x = _as_points(real_features, "real_features")
    fake_x = _as_points(fake_features, "fake_features")
    if fake_x.shape[1] != real_x.shape[1]:
        raise ValueError(f"feature dimensions differ: {real_x.shape[1]} vs {fake_x.shape[1]}")
    real, fake = _prepare(real_x, fake_x.to(real_x.device))
    k_dc = nearest_k
    k_pr = nearest_k if pr_nearest_k is None else pr_nearest_k
    for k, name in ((k_dc, "nearest_k"), (k_pr, "pr_nearest_k")):
        _check_k(k, len(real), "real", name)
        _check_k(k, len(fake), "fake", name)
    n_real, n_fake = len(real), len(fake)

    fake_radii = _kth_radii(fake, k_pr, chunk_size)  # (N_fake,)

    device = real.x64.device
    fake_in_real_ball = torch.zeros(n_fake, dtype=torch.bool, device=device)  # precision
    real_balls_per_fake = torch.zeros(n_fake, dtype=torch.int64, device=device)  # density
    real_in_fake_ball = torch.zeros(n_real, dtype=torch.bool, device=device)  # recall
    real_ball_has_fake = torch.zeros(n_real, dtype=torch.bool, device=device)  # coverage
    for rows in _chunks(n_real, max(n_real, n_fake), chunk_size):
        d_self = _distances(real, rows, real)  # (c, N_real)
        r_pr = torch.kthvalue(d_self, k_pr + 1, dim=1).values[:, None]  # (c, 1)
        r_dc = r_pr if k_dc == k_pr else torch.kthvalue(d_self, k_dc + 1, dim=1).values[:, None]
        del d_self
        d = _distances(real, rows, fake)  # (c, N_fake)
        fake_in_real_ball |= (d < r_pr).any(dim=0)
        real_balls_per_fake += (d < r_dc).sum(dim=0)
        real_in_fake_ball[rows] = (d < fake_radii[None, :]).any(dim=1)
        real_ball_has_fake[rows] = d.min(dim=1).values < r_dc[:, 0]

    # The same float64 arithmetic as numpy's mean of booleans / counts in compute_prdc.
    return {
        PRECISION: int(fake_in_real_ball.sum()) / n_fake,
        RECALL: int(real_in_fake_ball.sum()) / n_real,
        DENSITY: (1.0 / float(k_dc)) * (int(real_balls_per_fake.sum()) / n_fake),
        COVERAGE: int(real_ball_has_fake.sum()) / n_real,
    }
