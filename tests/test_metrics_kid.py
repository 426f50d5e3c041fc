"""KID: the per-subset MMD^2 against torch-fidelity and torchmetrics on identical subsets, the
full estimator against torch-fidelity (same subset draws), and its behaviour."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from torch_fidelity.metric_kid import kernel_mmd, kid_features_to_metric
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

from ganforge.metrics import (
    KID_MEAN, KID_STD, METRICS, kid_from_features, polynomial_kernel, polynomial_mmd2,
)

REL = 1e-6  # the protocol's tolerance against the reference packages


pytestmark = pytest.mark.usefixtures("one_thread")  # small matrices: extra threads only wait


def _features(seed: int, n: int, d: int = 32, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / d ** 0.5
    mix += torch.eye(d, dtype=torch.float64)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + shift


@pytest.fixture(scope="module")
def pair():
    return _features(0, 400), _features(1, 300, shift=0.5)


def _abs_tol(value: float) -> float:
    return REL * max(1.0, abs(value))


def _tf_kwargs(degree=3, gamma=None, coef0=1):
    return dict(kid_kernel="poly", kid_kernel_poly_degree=degree, kid_kernel_poly_gamma=gamma,
                kid_kernel_poly_coef0=coef0)


KERNELS = [dict(), dict(degree=2, gamma=0.5, coef0=0.0), dict(degree=4, gamma=0.01)]


@pytest.mark.parametrize("kernel", KERNELS)
def test_subset_mmd_matches_references(pair, kernel):
    f1, f2 = pair
    g = torch.Generator().manual_seed(7)
    for _ in range(5):
        x = f1[torch.randperm(len(f1), generator=g)[:100]]
        y = f2[torch.randperm(len(f2), generator=g)[:100]]
        ours = polynomial_mmd2(x, y, **kernel)
        degree, gamma = kernel.get("degree", 3), kernel.get("gamma")
        coef0 = kernel.get("coef0", 1.0)
        tf = kernel_mmd(x.numpy(), y.numpy(), **_tf_kwargs(degree, gamma, coef0))
        tm = float(poly_mmd(x, y, degree, gamma, coef0))
        assert ours == pytest.approx(tf, rel=REL, abs=_abs_tol(tf))
        assert ours == pytest.approx(tm, rel=REL, abs=_abs_tol(tm))
    # same-distribution subsets: values near 0, still equal to the reference
    x, y = f1[:100], f1[100:200]
    tf = kernel_mmd(x.numpy(), y.numpy(), **_tf_kwargs())
    assert polynomial_mmd2(x, y) == pytest.approx(tf, abs=_abs_tol(tf))


def test_subset_mmd_matches_explicit_double_sum():
    """The unbiased estimator written out with Python loops, for unequal set sizes."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.randn(4, 3, generator=g, dtype=torch.float64) + 1.0

    def k(a, b):
        return (float(a @ b) / 3 + 1.0) ** 3

    m, n = len(x), len(y)
    pairs_x = [(i, j) for i, j in itertools.product(range(m), repeat=2) if i != j]
    pairs_y = [(i, j) for i, j in itertools.product(range(n), repeat=2) if i != j]
    xx = sum(k(x[i], x[j]) for i, j in pairs_x) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in pairs_y) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    assert polynomial_mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    assert polynomial_kernel(x, y)[1, 2].item() == pytest.approx(k(x[1], y[2]), rel=1e-12)


def test_full_estimator_matches_torch_fidelity(pair):
    """Same seed -> the same subsets as torch-fidelity -> the same mean and std."""
    f1, f2 = pair
    ours = kid_from_features(f1, f2, num_subsets=20, subset_size=150, seed=2020)
    ref = kid_features_to_metric(f1, f2, kid_subsets=20, kid_subset_size=150, rng_seed=2020,
                                 verbose=False, **_tf_kwargs())
    mean, std = ref["kernel_inception_distance_mean"], ref["kernel_inception_distance_std"]
    assert ours[0] == pytest.approx(mean, rel=REL)
    assert ours[1] == pytest.approx(std, rel=REL)
    assert ours[1] > 0


class _Identity(torch.nn.Module):
    def forward(self, x):
        return x


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_subsets_of_torchmetrics_give_the_same_values(pair):
    """torchmetrics draws subsets with the global torch RNG: replay its draws and compare."""
    f1, f2 = pair
    metric = KernelInceptionDistance(feature=_Identity(), subsets=6, subset_size=120)
    metric.update(f1, real=True)
    metric.update(f2, real=False)
    torch.manual_seed(11)
    ref_mean, ref_std = (float(v) for v in metric.compute())
    torch.manual_seed(11)
    values = []
    for _ in range(6):  # the same randperm calls, in the same order, as torchmetrics' compute()
        x = f1[torch.randperm(len(f1))[:120]]
        y = f2[torch.randperm(len(f2))[:120]]
        values.append(polynomial_mmd2(x, y))
    values = torch.tensor(values, dtype=torch.float64)
    assert float(values.mean()) == pytest.approx(ref_mean, rel=REL)
    assert float(values.std(correction=0)) == pytest.approx(ref_std, rel=REL)


def test_same_distribution_near_zero_and_different_clearly_positive():
    a, b = _features(0, 1000), _features(0, 2000)[1000:]  # same mixing matrix, fresh samples
    c = _features(0, 1000, shift=0.5)
    same_mean, same_std = kid_from_features(a, b, num_subsets=10, subset_size=500)
    diff_mean, diff_std = kid_from_features(a, c, num_subsets=10, subset_size=500)
    assert abs(same_mean) < 0.01
    assert diff_mean > 0.2
    assert diff_mean > 20 * abs(same_mean)


def test_subset_size_is_capped_with_a_warning(pair):
    f1, f2 = pair
    with pytest.warns(UserWarning, match="subset_size"):
        capped = kid_from_features(f1, f2, num_subsets=3, subset_size=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit = kid_from_features(f1, f2, num_subsets=3, subset_size=min(len(f1), len(f2)))
    assert capped == explicit


def test_too_few_samples_raise():
    with pytest.raises(ValueError, match="at least 2"):
        kid_from_features(torch.randn(1, 4), torch.randn(10, 4), subset_size=5)
    with pytest.raises(ValueError, match="at least 2"):
        polynomial_mmd2(torch.randn(1, 4), torch.randn(3, 4))
    with pytest.raises(ValueError, match="dimensions"):
        kid_from_features(torch.randn(10, 4), torch.randn(10, 5))


def test_seed_controls_the_subsets(pair):
    f1, f2 = pair
    a = kid_from_features(f1, f2, num_subsets=4, subset_size=50, seed=1)
    assert kid_from_features(f1, f2, num_subsets=4, subset_size=50, seed=1) == a
    assert kid_from_features(f1, f2, num_subsets=4, subset_size=50, seed=2) != a


def test_registry_entry(pair):
    f1, f2 = pair
    out = METRICS.get("kid")(f1, f2, num_subsets=3, subset_size=100)
    mean, std = kid_from_features(f1, f2, num_subsets=3, subset_size=100)
    assert out == {KID_MEAN: mean, KID_STD: std}
