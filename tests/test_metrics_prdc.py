"""Precision / recall / density / coverage: exact equality with the ``prdc`` package, including
ties, duplicates and scikit-learn's float32 rounding of squared distances."""

from __future__ import annotations

import contextlib
import io
import sys

import numpy as np
import pytest
import scipy.spatial.distance
import torch
from prdc import compute_prdc

from ganforge.metrics import COVERAGE, DENSITY, METRICS, PRECISION, RECALL, prdc


pytestmark = pytest.mark.usefixtures("one_thread")  # small matrices: extra threads only wait


def reference(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the sample counts
        out = compute_prdc(real, fake, k)
    return {name: float(value) for name, value in out.items()}


def _gaussian(seed, n_real, n_fake, d, dtype):
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n_real, d))
    fake = 1.2 * rng.standard_normal((n_fake, d)) + 0.3
    return real.astype(dtype), fake.astype(dtype)


def _lattice(seed, n_real, n_fake, d, high, dtype):
    """Integer features: many exact duplicates and tied distances, all exact in float64."""
    rng = np.random.default_rng(seed)
    real = rng.integers(0, high, (n_real, d))
    fake = rng.integers(0, high, (n_fake, d))
    fake[: n_fake // 4] = real[: n_fake // 4]  # fakes that duplicate real samples
    return real.astype(dtype), fake.astype(dtype)


CASES = {
    "gaussian-f32": (_gaussian(0, 300, 250, 16, np.float32), 5),
    "gaussian-f64": (_gaussian(1, 200, 260, 8, np.float64), 3),
    "gaussian-f32-k1": (_gaussian(2, 150, 150, 4, np.float32), 1),
    "lattice-f64-dups": (_lattice(3, 200, 180, 3, 3, np.float64), 5),
    "lattice-f32-dups": (_lattice(4, 200, 180, 2, 4, np.float32), 3),
    "lattice-f32-wide": (_lattice(5, 150, 120, 4, 10, np.float32), 5),
    "lattice-f32-large": (_lattice(6, 300, 200, 3, 20000, np.float32), 4),
    "mixed-f32-f64": ((_gaussian(7, 120, 90, 6, np.float32)[0],
                       _gaussian(7, 120, 90, 6, np.float64)[1]), 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_equals_prdc_package_exactly(name):
    (real, fake), k = CASES[name]
    assert prdc(real, fake, nearest_k=k) == reference(real, fake, k)


def test_lattice_cases_really_contain_ties():
    """Guard: the lattice cases have duplicate rows and zero k-NN radii, so they test the ties."""
    (real, _), _ = CASES["lattice-f64-dups"]
    assert len(np.unique(real, axis=0)) < len(real) // 2


def _float32_rounding_case():
    """Per cluster: a real anchor, a real neighbour at squared distance 6000^2 + 1 and a fake at
    squared distance 6000^2. In float64 the fake is strictly inside the anchor's 1-NN ball; after
    scikit-learn rounds squared distances to float32 the two distances tie and it is not."""
    real, fake = [], []
    for c in range(6):
        origin = np.array([c * 10 ** 6, (c % 3) * 10 ** 6])
        real += [origin, origin + [1, 6000]]
        fake.append(origin + ([6000, 0] if c % 2 == 0 else [0, -3000]))
    return np.array(real, dtype=np.float32), np.array(fake, dtype=np.float32)


def test_float32_rounding_of_squared_distances_is_reproduced():
    real, fake = _float32_rounding_case()
    ref32 = reference(real, fake, 1)
    ref64 = reference(real.astype(np.float64), fake.astype(np.float64), 1)
    assert ref32 != ref64  # the case is sensitive to the rounding
    assert prdc(real, fake, nearest_k=1) == ref32
    assert prdc(real.astype(np.float64), fake.astype(np.float64), nearest_k=1) == ref64
    assert prdc(torch.from_numpy(real), torch.from_numpy(fake), nearest_k=1) == ref32


def _exact_reference(real: np.ndarray, fake: np.ndarray, k: int, monkeypatch) -> dict[str, float]:
    """compute_prdc with its distances computed exactly (scipy's cdist takes differences, so a
    duplicate is at distance 0 instead of scikit-learn's rounding noise)."""
    import prdc.prdc as module

    def exact_distances(data_x, data_y=None):
        return scipy.spatial.distance.cdist(data_x, data_x if data_y is None else data_y)

    with monkeypatch.context() as patch:
        patch.setattr(module, "compute_pairwise_distance", exact_distances)
        return reference(real, fake, k)


def test_duplicates_within_each_set(monkeypatch):
    """Non-integer features drawn with repetition from a few base points, in each set separately:
    the radii of repeated samples involve exact duplicates (0) and must match exactly."""
    for seed, d in ((10, 2), (11, 16), (12, 64)):
        rng = np.random.default_rng(seed)
        real = (3 * rng.standard_normal((60, d)) + 5)[rng.integers(0, 60, 200)]
        fake = (3 * rng.standard_normal((50, d)) + 5.5)[rng.integers(0, 50, 150)]
        assert len(np.unique(real, axis=0)) < 70 and len(np.unique(fake, axis=0)) < 60
        for k in (1, 3, 5):
            expected = reference(real, fake, k)
            assert expected == _exact_reference(real, fake, k, monkeypatch)
            for chunk_size in (None, 13):
                assert prdc(real, fake, nearest_k=k, chunk_size=chunk_size) == expected


def test_exact_duplicates_across_sets_are_at_distance_zero(monkeypatch):
    """Ten non-integer points p, each held 4 times by the real set and once by the fake set, far
    from everything else. With k = 3 the real copies of p have radius exactly 0, so the fake
    copies are in no real ball (strict <). scikit-learn's distances between copies are rounding
    noise (about half of them positive) rather than 0; ours are exact."""
    rng = np.random.default_rng(13)
    points = 10 * rng.standard_normal((10, 64)) + 100.0  # (10, 64), far apart and from the rest
    real = np.concatenate([np.repeat(points, 4, axis=0), rng.standard_normal((40, 64))])
    fake = np.concatenate([points, rng.standard_normal((30, 64)) + 0.2])
    expected = _exact_reference(real, fake, 3, monkeypatch)
    out = prdc(real, fake, nearest_k=3)
    assert out == expected
    without_copies = prdc(real, fake[10:], nearest_k=3)
    assert out[PRECISION] * 40 == pytest.approx(without_copies[PRECISION] * 30)  # copies add no hit
    assert out[DENSITY] * 40 == pytest.approx(without_copies[DENSITY] * 30)


def test_duplicate_rows_are_at_distance_exactly_zero():
    """White-box check of the distance helper: the expansion |x|^2 - 2 <x, y> + |y|^2 leaves
    rounding noise between equal rows; the helper sets every equal pair (within and across the
    sets, in every chunk) to exactly 0."""
    prdc_module = sys.modules["ganforge.metrics.prdc"]  # the name ``prdc`` is the function
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(50, 64, generator=g, dtype=torch.float64) + 3) * 100
    noise = 2 * (x * x).sum(1) - 2 * (x @ x.T).diagonal()
    assert (noise != 0).any()  # the expansion alone would not give 0
    real, fake = prdc_module._prepare(torch.cat([x, x]), x[:20].clone())
    same = torch.cat([torch.arange(50), torch.arange(50)])
    for rows in (slice(0, 100), slice(0, 7), slice(45, 60)):
        d_rr = prdc_module._distances(real, rows, real)
        d_rf = prdc_module._distances(real, rows, fake)
        assert torch.equal(d_rr == 0, same[rows, None] == same[None, :])
        assert torch.equal(d_rf == 0, same[rows, None] == torch.arange(20)[None, :])


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_chunking_does_not_change_the_result(chunk_size):
    for name in ("gaussian-f32", "lattice-f64-dups"):
        (real, fake), k = CASES[name]
        assert prdc(real, fake, nearest_k=k, chunk_size=chunk_size) == reference(real, fake, k)


def test_separate_k_for_precision_recall():
    (real, fake), _ = CASES["gaussian-f32"]
    ours = prdc(real, fake, nearest_k=5, pr_nearest_k=3)
    k3, k5 = reference(real, fake, 3), reference(real, fake, 5)
    assert ours == {PRECISION: k3["precision"], RECALL: k3["recall"],
                    DENSITY: k5["density"], COVERAGE: k5["coverage"]}
    assert METRICS.get("prdc")(real, fake) == ours  # the protocol's k = 3 / k = 5


def test_hand_computed_one_dimensional_case():
    """Real {0, 1, 3}, fake {2.5, 10, 1}, k = 1, worked out by hand.

    Real radii (2nd smallest of each row, the row includes the 0 self-distance): 1, 1, 2.
    Fake radii: 2.5 -> 1.5, 10 -> 7.5, 1 -> 1.5.
    Fake 2.5 lies in B(3, 2) only; fake 10 in no real ball; fake 1 in B(1, 1) only (|1 - 0| = 1
    and |1 - 3| = 2 are not strictly inside B(0, 1) and B(3, 2)).
    """
    real = np.array([[0.0], [1.0], [3.0]])
    fake = np.array([[2.5], [10.0], [1.0]])
    out = prdc(real, fake, nearest_k=1)
    assert out[PRECISION] == pytest.approx(2 / 3)  # fakes 2.5 and 1
    assert out[DENSITY] == pytest.approx(2 / 3)  # (1 / k) * mean(1, 0, 1)
    assert out[COVERAGE] == pytest.approx(2 / 3)  # B(1, 1) holds 1, B(3, 2) holds 2.5, B(0, 1) none
    assert out[RECALL] == pytest.approx(1.0)  # 0 in B(1, 1.5), 1 in B(1, 1.5), 3 in B(2.5, 1.5)
    assert out == reference(real, fake, 1)


def test_invalid_arguments_raise():
    real, fake = np.zeros((5, 2)), np.ones((6, 2))
    with pytest.raises(ValueError, match="nearest_k"):
        prdc(real, fake, nearest_k=5)  # needs at least 6 real samples
    with pytest.raises(ValueError, match="nearest_k"):
        prdc(real, fake, nearest_k=0)
    with pytest.raises(ValueError, match="dimensions"):
        prdc(real, np.ones((6, 3)), nearest_k=2)
    with pytest.raises(ValueError, match="NaN"):
        prdc(np.full((5, 2), np.nan), fake, nearest_k=2)
