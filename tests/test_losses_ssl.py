"""Semi-supervised GAN losses (ganforge.losses_ssl) against values computed by hand with plain
Python ``math`` from the definitions of Salimans et al. (2016): K real-class logits, the
"generated" logit fixed at 0, D(x) = Z / (Z + 1) with Z = sum_k exp(l_k)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from ganforge.losses import d_minimax
from ganforge.losses_ssl import (feature_matching, real_logit, ssl_d_loss, ssl_g_nonsaturating,
                                 ssl_probabilities, ssl_supervised, ssl_unsupervised)

LAB = [[1.0, -0.5, 0.2], [0.0, 2.0, -1.0]]
Y = [0, 2]
REAL = [[0.3, 0.1, -2.0], [1.5, 1.0, 0.5], [-1.0, -1.0, -1.0]]
FAKE = [[-0.7, 0.4, 0.0], [2.0, -3.0, 1.0]]


def _z(row):
    return sum(math.exp(v) for v in row)


def _d(row):
    return _z(row) / (_z(row) + 1)


def _t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_supervised_is_cross_entropy_over_real_classes():
    expected = sum(-math.log(math.exp(r[y]) / _z(r)) for r, y in zip(LAB, Y)) / 2
    got = ssl_supervised(logits=_t(LAB), labels=torch.tensor(Y))
    assert abs(got.item() - expected) < 1e-12


def test_unsupervised_term_by_hand():
    expected = (sum(-math.log(_d(r)) for r in REAL) / 3 + sum(-math.log(1 - _d(r)) for r in FAKE) / 2)
    got = ssl_unsupervised(real_logits=_t(REAL), fake_logits=_t(FAKE))
    assert abs(got.item() - expected) < 1e-12
    # it is the ordinary minimax D loss with the real/fake logit logsumexp(l) = log Z
    same = d_minimax(real_logits=real_logit(_t(REAL)), fake_logits=real_logit(_t(FAKE)))
    assert abs(same.item() - expected) < 1e-12


def test_total_d_loss_and_generator_losses():
    sup = sum(-math.log(math.exp(r[y]) / _z(r)) for r, y in zip(LAB, Y)) / 2
    unsup = sum(-math.log(_d(r)) for r in REAL) / 3 + sum(-math.log(1 - _d(r)) for r in FAKE) / 2
    got = ssl_d_loss(labelled_logits=_t(LAB), labels=torch.tensor(Y), real_logits=_t(REAL),
                     fake_logits=_t(FAKE), unsup_weight=0.5)
    assert abs(got.item() - (sup + 0.5 * unsup)) < 1e-12
    ns = sum(-math.log(_d(r)) for r in FAKE) / 2
    assert abs(ssl_g_nonsaturating(fake_logits=_t(FAKE)).item() - ns) < 1e-12


def test_probabilities_have_the_fixed_fake_logit():
    p = ssl_probabilities(_t(REAL))
    for row, prow in zip(REAL, p.tolist()):
        z = _z(row)
        assert all(abs(prow[k] - math.exp(row[k]) / (z + 1)) < 1e-12 for k in range(3))
        assert abs(prow[3] - 1 / (z + 1)) < 1e-12
        assert abs(1 - prow[3] - _d(row)) < 1e-12


def test_unsupervised_term_uses_no_labels():
    params = inspect.signature(ssl_unsupervised).parameters
    assert set(params) == {"real_logits", "fake_logits"}
    # it sees each row only through logsumexp: any relabelling (permutation of the classes) keeps it
    perm = [2, 0, 1]
    a = ssl_unsupervised(real_logits=_t(REAL), fake_logits=_t(FAKE))
    b = ssl_unsupervised(real_logits=_t(REAL)[:, perm], fake_logits=_t(FAKE)[:, perm])
    assert torch.equal(a, b)
    # while the supervised term does depend on which class is which
    assert not torch.equal(ssl_supervised(logits=_t(LAB), labels=torch.tensor(Y)),
                           ssl_supervised(logits=_t(LAB)[:, perm], labels=torch.tensor(Y)))


def test_large_logits_stay_finite():
    big = torch.tensor([[1000.0, 999.0], [-1000.0, -1000.0]])
    loss = ssl_unsupervised(real_logits=big, fake_logits=big)
    # real: softplus(-lse) ~ 0 for row 0, softplus(1000 - log 2) for row 1; fake: lse(row 0) = 1000 + log(1 + e^-1)
    lse0 = 1000 + math.log(1 + math.exp(-1))
    expected = (0 + (1000 - math.log(2))) / 2 + (lse0 + math.log(1 + math.exp(-1000 + math.log(2)))) / 2
    assert torch.isfinite(loss) and abs(loss.item() - expected) < 1e-3


def test_feature_matching_by_hand():
    real = torch.tensor([[1.0, 2.0], [3.0, 0.0]])  # mean (2, 1)
    fake = torch.tensor([[0.0, 0.0], [1.0, 4.0], [2.0, 2.0]], requires_grad=True)  # mean (1, 2)
    loss = feature_matching(real_features=real, fake_features=fake)
    assert abs(loss.item() - ((2 - 1) ** 2 + (1 - 2) ** 2)) < 1e-6
    loss.backward()
    # d/dfake_ij of sum_j (mr_j - mf_j)^2 = -2 (mr_j - mf_j) / 3
    assert torch.allclose(fake.grad, torch.tensor([[-2 / 3, 2 / 3]]).expand(3, 2))
    maps = torch.randn(4, 3, 5, 5)
    assert feature_matching(real_features=maps, fake_features=maps.clone()).item() == 0
    with pytest.raises(ValueError, match="feature shapes differ"):
        feature_matching(real_features=maps, fake_features=torch.randn(4, 3, 4, 4))
