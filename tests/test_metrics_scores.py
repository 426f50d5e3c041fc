"""Inception-Score-style score, mode metrics for the toy mixtures and the stacked protocol, and
the METRICS registry."""

from __future__ import annotations

import math

import pytest
import torch
from torch_fidelity.metric_isc import isc_features_to_metric
from torchmetrics.image.inception import InceptionScore

from ganforge.data.toy import grid25, ring8
from ganforge.metrics import (
    HQ_FRACTION, IS_MEAN, IS_STD, KL, METRICS, MODES, REVERSE_KL, inception_score_from_probs,
    mode_metrics, stacked_mode_metrics,
)
from ganforge.registry import UnknownNameError


def _probs(seed: int, n: int, c: int, temperature: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, generator=g, dtype=torch.float64) * 3 / temperature).softmax(dim=1)


# -- Inception Score -------------------------------------------------------------------------

def test_uniform_predictions_score_one():
    mean, std = inception_score_from_probs(torch.full((100, 10), 0.1), splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("c", [2, 10, 37])
def test_confident_predictions_spread_evenly_score_c(c):
    """One-hot predictions cycling through the classes: every split sees each class equally."""
    labels = torch.arange(c * 20) % c
    probs = torch.nn.functional.one_hot(labels, c).double()
    mean, std = inception_score_from_probs(probs, splits=4 if c * 20 % 4 == 0 else 1)
    assert mean == pytest.approx(c, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_identical_confident_predictions_score_one():
    probs = torch.zeros(50, 10)
    probs[:, 3] = 1.0
    assert inception_score_from_probs(probs, splits=5)[0] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("n, splits", [(1000, 10), (997, 10), (64, 3), (40, 1)])
def test_matches_torch_fidelity(n, splits):
    """torch-fidelity takes logits; log(p) are logits of p. Unshuffled, the splits coincide."""
    probs = _probs(n, n, 12)
    ref = isc_features_to_metric(probs.log(), splits=splits, shuffle=False)
    mean, std = inception_score_from_probs(probs, splits=splits)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-12)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-9, abs=1e-12)
    assert mean > 1.5


class _Identity(torch.nn.Module):
    def forward(self, x):
        return x


@pytest.mark.filterwarnings("ignore:Metric `InceptionScore` will save")
def test_matches_torchmetrics_logic():
    """torchmetrics permutes with the global RNG, splits with torch.chunk and reports the sample
    std: replay its permutation; with splits dividing N the groups are the same."""
    probs = _probs(1, 600, 8)
    metric = InceptionScore(feature=_Identity(), splits=6)
    metric.update(probs.log())
    torch.manual_seed(5)
    ref_mean, ref_std = (float(v) for v in metric.compute())
    torch.manual_seed(5)
    perm = torch.randperm(len(probs))
    mean, std = inception_score_from_probs(probs[perm], splits=6)
    assert mean == pytest.approx(ref_mean, rel=1e-12)
    assert std * math.sqrt(6 / 5) == pytest.approx(ref_std, rel=1e-9)


def test_inception_score_rejects_logits_and_bad_splits():
    with pytest.raises(ValueError, match="not logits"):
        inception_score_from_probs(torch.randn(20, 5), splits=2)
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score_from_probs(torch.rand(20, 5) + 0.5, splits=2)
    with pytest.raises(ValueError, match="splits"):
        inception_score_from_probs(_probs(0, 5, 3), splits=6)
    with pytest.raises(ValueError, match="non-negative"):
        inception_score_from_probs(torch.tensor([[1.5, -0.5], [0.5, 0.5]]), splits=1)


# -- 2-D mixtures --------------------------------------------------------------------------------

def _grid_means(k_side: int = 3) -> torch.Tensor:
    v = torch.arange(k_side, dtype=torch.float64) * 2.0
    return torch.cartesian_prod(v, v)  # (k_side^2, 2)


def test_all_samples_on_one_mode():
    means = _grid_means()
    samples = means[4].repeat(100, 1) + 0.01  # within 3 * 0.05 of mode 4
    out = mode_metrics(samples, means, 0.05)
    assert out == {MODES: 1, HQ_FRACTION: 1.0, REVERSE_KL: pytest.approx(math.log(9), rel=1e-12)}


def test_perfectly_uniform_samples():
    means = _grid_means()
    offsets = torch.tensor([[0.1, 0.0], [0.0, -0.1], [-0.05, 0.05]], dtype=torch.float64)  # < 3 std
    samples = (means[:, None, :] + offsets[None]).reshape(-1, 2)  # 3 samples per mode
    out = mode_metrics(samples, means, 0.05)
    assert out[MODES] == 9 and out[HQ_FRACTION] == 1.0
    assert out[REVERSE_KL] == pytest.approx(0.0, abs=1e-12)


def test_far_samples_are_not_high_quality():
    means = _grid_means()
    far = torch.full((10, 2), 100.0)
    out = mode_metrics(far, means, 0.05)
    assert out[MODES] == 0 and out[HQ_FRACTION] == 0.0
    assert out[REVERSE_KL] == pytest.approx(math.log(9))  # the documented value without HQ samples
    # between modes (1 unit from the nearest mode, i.e. 20 std): not HQ either
    assert mode_metrics(torch.tensor([[1.0, 0.0]]), means, 0.05)[HQ_FRACTION] == 0.0


def test_three_std_threshold():
    means = torch.zeros(1, 2)
    inside = mode_metrics(torch.tensor([[0.29, 0.0]]), means, 0.1)
    outside = mode_metrics(torch.tensor([[0.0, 0.31]]), means, 0.1)
    assert inside[HQ_FRACTION] == 1.0 and outside[HQ_FRACTION] == 0.0
    wider = mode_metrics(torch.tensor([[0.0, 0.31]]), means, 0.1, threshold_stds=4.0)
    assert wider[HQ_FRACTION] == 1.0


def test_hand_computed_histogram():
    """K = 4 modes get 3, 1, 0 and 0 HQ samples; 4 of the 8 samples are too far from any mode."""
    means = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    samples = torch.tensor([[0.0, 0.0], [0.01, 0.0], [0.0, -0.01], [1.0, 0.01],
                            [0.5, 0.5], [5.0, 5.0], [-3.0, 0.0], [0.5, 0.0]])
    out = mode_metrics(samples, means, 0.02)
    assert out[MODES] == 2
    assert out[HQ_FRACTION] == 0.5
    # p = (3/4, 1/4, 0, 0): 3/4 log(3/4 * 4) + 1/4 log(1/4 * 4) = 0.75 log 3
    assert out[REVERSE_KL] == pytest.approx(0.75 * math.log(3), rel=1e-12)


@pytest.mark.parametrize("mixture", [ring8, grid25])
def test_true_mixture_samples(mixture):
    """2,500 samples of the data distribution itself: every mode, ~98.9 % HQ (P(r <= 3 std) for a
    2-D Gaussian is 1 - exp(-4.5)), reverse KL near 0."""
    m = mixture()
    x, _ = m.sample(2500, torch.Generator().manual_seed(0))
    out = mode_metrics(x, m.means, m.std)
    assert out[MODES] == len(m.means)
    assert out[HQ_FRACTION] == pytest.approx(1 - math.exp(-4.5), abs=0.006)
    assert 0 <= out[REVERSE_KL] < 0.02


def test_mode_metrics_validation():
    with pytest.raises(ValueError, match="dimensions"):
        mode_metrics(torch.zeros(3, 2), torch.zeros(4, 3), 0.1)
    with pytest.raises(ValueError, match="std"):
        mode_metrics(torch.zeros(3, 2), torch.zeros(4, 2), 0.0)


# -- stacked (1000 modes) ----------------------------------------------------------------------

def test_stacked_all_one_triple():
    out = stacked_mode_metrics(torch.tensor([[1, 2, 3]] * 50))
    assert out == {MODES: 1, KL: pytest.approx(math.log(1000), rel=1e-12)}


def test_stacked_every_triple_once_is_uniform():
    digits = torch.arange(10)
    triples = torch.cartesian_prod(digits, digits, digits)  # (1000, 3)
    out = stacked_mode_metrics(triples.repeat(2, 1))
    assert out[MODES] == 1000
    assert out[KL] == pytest.approx(0.0, abs=1e-12)


def test_stacked_hand_computed():
    # (0,0,1) x2 and (0,1,0), (1,0,0) once: p = (1/2, 1/4, 1/4) over 1000 modes;
    # (1,0,0) and (0,0,1) are distinct modes (the order of channels matters)
    triples = torch.tensor([[0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
    out = stacked_mode_metrics(triples)
    expected = 0.5 * math.log(500) + 2 * 0.25 * math.log(250)
    assert out[MODES] == 3 and out[KL] == pytest.approx(expected, rel=1e-12)
    assert stacked_mode_metrics(torch.tensor([[0, 1], [1, 0]]), num_classes=2) == {
        MODES: 2, KL: pytest.approx(math.log(2))}


def test_stacked_validation():
    with pytest.raises(ValueError, match="classes"):
        stacked_mode_metrics(torch.tensor([[0, 10, 1]]))
    with pytest.raises(TypeError):
        stacked_mode_metrics(torch.tensor([[0.0, 1.0, 2.0]]))


# -- registry -----------------------------------------------------------------------------------

def test_registry_names_and_errors():
    assert METRICS.keys() == ["fid", "inception_score", "kid", "prdc"]
    assert all(METRICS.help(name) for name in METRICS)
    with pytest.raises(UnknownNameError, match="did you mean 'fid'"):
        METRICS.get("fidd")
    with pytest.raises(ValueError, match="already registered"):
        METRICS.register("fid")(lambda real_features, fake_features: {})


def test_registry_inception_score_uses_fake_probabilities():
    probs = _probs(3, 100, 5)
    mean, std = inception_score_from_probs(probs, splits=10)
    assert METRICS.get("inception_score")(None, probs) == {IS_MEAN: mean, IS_STD: std}
