"""FID: agreement with torch-fidelity, torchmetrics and the scipy-sqrtm formula (pytorch-fid's)
on identical features, closed-form cases, and the streaming accumulator."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torchmetrics.image.fid import FrechetInceptionDistance

from ganforge.metrics import (
    FID, METRICS, FeatureStats, fid_from_feature_stats, fid_from_features, fid_from_stats,
)

REL = 1e-6  # the protocol's tolerance against the reference packages


pytestmark = pytest.mark.usefixtures("one_thread")  # small matrices: extra threads only wait


def _features(seed: int, n: int = 500, d: int = 64, shift: float = 0.0) -> np.ndarray:
    """Correlated, non-isotropic Gaussian features (float64), a different covariance per seed."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d) + np.diag(rng.uniform(0.5, 2.0, d))
    return rng.standard_normal((n, d)) @ mix + shift + rng.standard_normal(d)


@pytest.fixture(scope="module")
def pair():
    return _features(0), _features(1, shift=0.3)


def test_matches_torch_fidelity(pair):
    f1, f2 = pair
    s1 = fid_features_to_statistics(torch.from_numpy(f1))
    s2 = fid_features_to_statistics(torch.from_numpy(f2))
    ref = fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"]
    assert ref > 1.0  # a non-trivial case
    assert fid_from_features(f1, f2) == pytest.approx(ref, rel=REL)
    from_stats = fid_from_stats(s1["mu"], s1["sigma"], s2["mu"], s2["sigma"])
    assert from_stats == pytest.approx(ref, rel=REL)


class _Identity(torch.nn.Module):
    """A 'feature extractor' for torchmetrics that returns its input."""

    def __init__(self, d: int):
        super().__init__()
        self.num_features = d

    def forward(self, x):
        return x


def test_matches_torchmetrics(pair):
    f1, f2 = (torch.from_numpy(f) for f in pair)
    metric = FrechetInceptionDistance(feature=_Identity(f1.shape[1]))
    for batch in f1.split(128):
        metric.update(batch, real=True)
    for batch in f2.split(100):
        metric.update(batch, real=False)
    ref = float(metric.compute())
    assert fid_from_features(f1, f2) == pytest.approx(ref, rel=REL)


def test_matches_scipy_sqrtm_formula(pair):
    """pytorch-fid's formula: ||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))."""
    f1, f2 = pair
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    ref = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(ref, rel=REL)


def test_diagonal_gaussians_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.5])
    v1, v2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    expected = float(((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * (v1 * v2).sqrt()).sum())
    assert expected == pytest.approx(1 + 6.25 + (1 + 9 - 6) + (4 + 1 - 4) + 0)  # by hand: 12.25
    got = fid_from_stats(mu1, torch.diag(v1), mu2, torch.diag(v2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_one_dimensional():
    # N(0, 4) vs N(3, 1): 9 + 4 + 1 - 2 * 2 = 10
    assert fid_from_stats([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(10.0, rel=1e-12)


def test_commuting_covariances_closed_form():
    """S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T: FID = ||dmu||^2 + sum (sqrt(a) - sqrt(b))^2."""
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    a = torch.tensor([3.0, 1.0, 0.5, 2.0, 0.1, 7.0], dtype=torch.float64)
    b = torch.tensor([1.0, 1.0, 2.0, 0.3, 0.1, 4.0], dtype=torch.float64)
    mu1 = torch.randn(6, generator=g, dtype=torch.float64)
    mu2 = torch.randn(6, generator=g, dtype=torch.float64)
    expected = float(((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    got = fid_from_stats(mu1, q @ torch.diag(a) @ q.T, mu2, q @ torch.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-10)


def test_singular_covariances():
    """Rank-deficient covariances (fewer samples than dimensions) are handled by the clamp."""
    v1 = torch.tensor([2.0, 0.0, 0.0, 1.0])
    v2 = torch.tensor([0.5, 3.0, 0.0, 0.0])
    expected = float((v1 + v2 - 2 * (v1 * v2).sqrt()).sum())
    got = fid_from_stats(torch.zeros(4), torch.diag(v1), torch.zeros(4), torch.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)
    f1, f2 = torch.randn(10, 32, dtype=torch.float64), torch.randn(12, 32, dtype=torch.float64)
    value = fid_from_features(f1, f2)
    assert np.isfinite(value) and value > 0


def test_identical_sets_give_zero_and_fid_is_symmetric(pair):
    f1, f2 = pair
    assert abs(fid_from_features(f1, f1)) < 1e-9 * np.trace(np.cov(f1, rowvar=False))
    assert fid_from_features(f1, f2) == pytest.approx(fid_from_features(f2, f1), rel=1e-10)


def test_float32_features_are_accumulated_in_float64(pair):
    f1, f2 = (torch.from_numpy(f) for f in pair)
    f1_32, f2_32 = f1.float(), f2.float()
    ref = fid_from_features(f1_32.double(), f2_32.double())
    assert fid_from_features(f1_32, f2_32) == ref


# -- FeatureStats -------------------------------------------------------------------------------

def test_feature_stats_match_numpy(pair):
    f1, _ = pair
    stats = FeatureStats().update(f1)
    assert stats.count == len(f1)
    np.testing.assert_allclose(stats.mean().numpy(), f1.mean(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(stats.cov().numpy(), np.cov(f1, rowvar=False),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sizes", [[1] * 500, [7] * 71 + [3], [250, 250], [499, 1]])
def test_streaming_is_independent_of_batching(pair, sizes):
    f1, f2 = (torch.from_numpy(f) for f in pair)
    assert sum(sizes) == len(f1)
    stats = FeatureStats(f1.shape[1])
    for batch in f1.split(sizes):
        stats.update(batch)
    one_shot = fid_from_features(f1, f2)
    streamed = fid_from_feature_stats(stats, FeatureStats().update(f2))
    assert streamed == pytest.approx(one_shot, rel=1e-10)
    np.testing.assert_allclose(stats.cov().numpy(), np.cov(f1.numpy(), rowvar=False),
                               rtol=1e-10, atol=1e-12)


def test_state_dict_round_trip(pair):
    f1, f2 = pair
    stats = FeatureStats().update(f1[:300]).update(f1[300:])
    state = stats.state_dict()
    assert set(state) == {"count", "sum", "outer_sum"}
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored = FeatureStats.from_state_dict(torch.load(buffer, weights_only=True))
    assert restored.count == stats.count
    assert torch.equal(restored.mean(), stats.mean()) and torch.equal(restored.cov(), stats.cov())
    # continuing to accumulate after a restore gives the same result as never stopping
    restored.update(f2)
    stats.update(f2)
    assert torch.equal(restored.cov(), stats.cov())


def test_feature_stats_errors():
    stats = FeatureStats()
    with pytest.raises(ValueError):
        stats.mean()
    stats.update(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="at least 2"):
        stats.cov()
    with pytest.raises(ValueError, match="features"):
        stats.update(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        stats.update(torch.zeros(5))


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        fid_from_stats(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))
    with pytest.raises(ValueError):
        fid_from_features(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="NaN"):
        nan_mean = torch.tensor([0.0, float("nan")])
        fid_from_stats(torch.zeros(2), torch.eye(2), nan_mean, torch.eye(2))


def test_registry_entry(pair):
    f1, f2 = pair
    assert METRICS.get("fid")(f1, f2) == {FID: fid_from_features(f1, f2)}
