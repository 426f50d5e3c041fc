"""Golden values, sign conventions and registry behaviour of ``ganforge.losses``.

Every expected value is computed by hand with plain Python ``math`` from the formulas in the
papers (Goodfellow et al. 2014; Arjovsky et al. 2017; Lim & Ye 2017 / Miyato et al. 2018;
Mao et al. 2017), never by calling the torch ops the implementation uses. Convention under
test: every loss returns a scalar that its player MINIMISES; logits are pre-sigmoid.
"""

from __future__ import annotations

import math

import pytest
import torch

from ganforge import losses
from ganforge.losses import LOSSES, AdversarialLoss
from ganforge.registry import Registry, UnknownNameError

REAL = [2.0, -1.0, 0.5]
FAKE = [-0.3, 1.5]
TOL = 1e-6


# -- plain-Python reference formulas ---------------------------------------------------------

def _mean(xs):
    return sum(xs) / len(xs)


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _value_function(real, fake):
    """V(D, G) = E[log D(x)] + E[log(1 - D(G(z)))] with D = sigmoid(logit) (Goodfellow 2014)."""
    return _mean([math.log(_sigmoid(r)) for r in real]) + _g_term(fake)


def _g_term(fake):
    """The G-dependent term of V: E[log(1 - D(G(z)))]."""
    return _mean([math.log(1.0 - _sigmoid(f)) for f in fake])


def _hand_minimax_d(real, fake):
    return -_value_function(real, fake)  # D maximises V, so it minimises -V


def _hand_ns_g(fake):
    return -_mean([math.log(_sigmoid(f)) for f in fake])  # -E[log D(G(z))]


def _hand_w_d(real, fake):
    return _mean(fake) - _mean(real)  # critic maximises E[C(x)] - E[C(G(z))]


def _hand_w_g(fake):
    return -_mean(fake)


def _hand_hinge_d(real, fake):
    return _mean([max(0.0, 1.0 - r) for r in real]) + _mean([max(0.0, 1.0 + f) for f in fake])


def _hand_ls_d(real, fake):
    return 0.5 * _mean([(r - 1.0) ** 2 for r in real]) + 0.5 * _mean([f ** 2 for f in fake])


def _hand_ls_g(fake):
    return 0.5 * _mean([(f - 1.0) ** 2 for f in fake])


# name -> (D loss by hand, G loss by hand). A newly registered loss must be added here.
HAND = {
    "minimax": (_hand_minimax_d, _g_term),
    "ns": (_hand_minimax_d, _hand_ns_g),
    "wasserstein": (_hand_w_d, _hand_w_g),
    "hinge": (_hand_hinge_d, _hand_w_g),
    "ls": (_hand_ls_d, _hand_ls_g),
}

# name -> whether D's output is a logit of P(real) (sigmoid applies)
PROBABILISTIC = {"minimax": True, "ns": True, "wasserstein": False, "hinge": False, "ls": False}


def _t(xs, requires_grad=False):
    return torch.tensor(xs, dtype=torch.float64, requires_grad=requires_grad)


# -- golden values for every registered loss --------------------------------------------------

def test_every_registered_loss_has_a_hand_value():
    missing = sorted(set(LOSSES.keys()) - set(HAND))
    assert not missing, f"registered losses without a hand-computed golden value: {missing}"
    stale = sorted(set(HAND) - set(LOSSES.keys()))
    assert not stale, f"hand values for losses that are no longer registered: {stale}"


@pytest.mark.parametrize("name", LOSSES.keys())
def test_golden_values(name):
    assert name in HAND, f"loss '{name}' has no hand-computed golden value in this test"
    loss = LOSSES.get(name)
    assert isinstance(loss, AdversarialLoss)
    hand_d, hand_g = HAND[name]
    d = loss.d(real_logits=_t(REAL), fake_logits=_t(FAKE))
    g = loss.g(fake_logits=_t(FAKE))
    assert d.shape == () and g.shape == ()  # scalars
    assert d.item() == pytest.approx(hand_d(REAL, FAKE), abs=TOL)
    assert g.item() == pytest.approx(hand_g(FAKE), abs=TOL)


@pytest.mark.parametrize("name", LOSSES.keys())
def test_golden_values_float32(name):
    """The same values in float32 (the training dtype), at float32 precision."""
    hand_d, hand_g = HAND[name]
    loss = LOSSES.get(name)
    d = loss.d(real_logits=torch.tensor(REAL), fake_logits=torch.tensor(FAKE))
    g = loss.g(fake_logits=torch.tensor(FAKE))
    assert d.dtype == torch.float32 and g.dtype == torch.float32
    assert d.item() == pytest.approx(hand_d(REAL, FAKE), abs=TOL)
    assert g.item() == pytest.approx(hand_g(FAKE), abs=TOL)


@pytest.mark.parametrize("name", LOSSES.keys())
def test_probabilistic_flag(name):
    assert LOSSES.get(name).probabilistic is PROBABILISTIC[name]
    p = losses.d_probability(_t(REAL), LOSSES.get(name))
    expected = [_sigmoid(r) for r in REAL] if PROBABILISTIC[name] else REAL
    assert p.tolist() == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("name", LOSSES.keys())
def test_losses_are_batch_means(name):
    """Repeating a batch does not change a loss (means over samples, not sums)."""
    loss = LOSSES.get(name)
    d1 = loss.d(real_logits=_t(REAL), fake_logits=_t(FAKE)).item()
    d3 = loss.d(real_logits=_t(REAL * 3), fake_logits=_t(FAKE * 5)).item()
    assert d3 == pytest.approx(d1, abs=TOL)
    assert loss.g(fake_logits=_t(FAKE * 4)).item() == pytest.approx(loss.g(fake_logits=_t(FAKE)).item(), abs=TOL)


@pytest.mark.parametrize("name", LOSSES.keys())
def test_descent_directions(name):
    """In every loss's active region (real and fake scores inside (0, 1)), D lowers its loss by
    raising real scores and lowering fake scores, and G lowers its loss by raising fake scores."""
    real = _t([0.2, 0.5, 0.7], requires_grad=True)
    fake = _t([0.1, 0.6], requires_grad=True)
    loss = LOSSES.get(name)
    loss.d(real_logits=real, fake_logits=fake).backward()
    assert (real.grad < 0).all(), real.grad
    assert (fake.grad > 0).all(), fake.grad
    fake_g = _t([0.1, 0.6], requires_grad=True)
    loss.g(fake_logits=fake_g).backward()
    assert (fake_g.grad < 0).all(), fake_g.grad


# -- minimax / non-saturating -----------------------------------------------------------------

def test_minimax_d_is_minus_value_function():
    v = _value_function(REAL, FAKE)
    d = losses.d_minimax(real_logits=_t(REAL), fake_logits=_t(FAKE)).item()
    assert d == pytest.approx(-v, abs=TOL)
    assert d > 0  # -V >= 0 since both log-probabilities are <= 0


def test_minimax_g_is_the_g_term_of_v():
    """G minimises V itself; only V's second term depends on G, so g = E[log(1 - D(G(z)))]."""
    g = losses.g_minimax(fake_logits=_t(FAKE)).item()
    assert g == pytest.approx(_g_term(FAKE), abs=TOL)
    assert g < 0
    # and the full V equals (-D loss) and the G loss shares its G term exactly
    real_term = _mean([math.log(_sigmoid(r)) for r in REAL])
    assert real_term + g == pytest.approx(_value_function(REAL, FAKE), abs=TOL)


def test_minimax_at_equilibrium_is_log4():
    """With D = 1/2 everywhere (logit 0), -V = log 4 (Goodfellow 2014, Theorem 1)."""
    d = losses.d_minimax(real_logits=_t([0.0] * 4), fake_logits=_t([0.0] * 3)).item()
    assert d == pytest.approx(math.log(4.0), abs=TOL)


@pytest.mark.parametrize("f", [0.0, -2.0, -5.0, -10.0, -20.0])
def test_generator_gradients_by_hand(f):
    """d/df log(1 - sigmoid(f)) = -sigmoid(f);  d/df -log sigmoid(f) = -(1 - sigmoid(f))."""
    x = _t([f], requires_grad=True)
    losses.g_minimax(fake_logits=x).backward()
    assert x.grad.item() == pytest.approx(-_sigmoid(f), abs=1e-12)
    y = _t([f], requires_grad=True)
    losses.g_nonsaturating(fake_logits=y).backward()
    assert y.grad.item() == pytest.approx(-(1.0 - _sigmoid(f)), abs=1e-12)


def test_minimax_saturates_and_ns_does_not():
    """As D(G(z)) -> 0 (D confidently rejects fakes, early training) the minimax G gradient
    vanishes while the non-saturating one stays near -1 (Goodfellow 2014, section 3)."""
    mm, ns = [], []
    for f in [-1.0, -3.0, -6.0, -10.0, -15.0]:
        x = _t([f], requires_grad=True)
        losses.g_minimax(fake_logits=x).backward()
        mm.append(abs(x.grad.item()))
        y = _t([f], requires_grad=True)
        losses.g_nonsaturating(fake_logits=y).backward()
        ns.append(abs(y.grad.item()))
    assert all(a > b for a, b in zip(mm, mm[1:])), mm  # strictly shrinking
    assert mm[-1] < 1e-6  # D(G(z)) = sigmoid(-15) ~ 3e-7
    assert all(g > 0.7 for g in ns), ns
    assert ns[-1] == pytest.approx(1.0, abs=1e-6)
    # the registered 'minimax' and 'ns' share the D loss and differ only in G
    assert LOSSES.get("minimax").d is LOSSES.get("ns").d
    assert LOSSES.get("minimax").g is losses.g_minimax
    assert LOSSES.get("ns").g is losses.g_nonsaturating


def test_minimax_stable_for_extreme_logits():
    """Computed through softplus, not log(sigmoid): finite for |logit| = 100."""
    d = losses.d_minimax(real_logits=_t([-100.0]), fake_logits=_t([100.0])).item()
    assert d == pytest.approx(200.0, abs=1e-6)  # -log sigmoid(-100) ~ 100, -log(1 - sigmoid(100)) ~ 100
    g = losses.g_nonsaturating(fake_logits=torch.tensor([-100.0])).item()
    assert math.isfinite(g) and g == pytest.approx(100.0, abs=1e-4)


# -- Wasserstein ------------------------------------------------------------------------------

def test_wasserstein_d_decreases_when_real_scores_increase():
    base = losses.d_wasserstein(real_logits=_t(REAL), fake_logits=_t(FAKE)).item()
    up = losses.d_wasserstein(real_logits=_t([r + 1.0 for r in REAL]), fake_logits=_t(FAKE)).item()
    assert up == pytest.approx(base - 1.0, abs=TOL)
    fake_up = losses.d_wasserstein(real_logits=_t(REAL), fake_logits=_t([f + 0.5 for f in FAKE])).item()
    assert fake_up == pytest.approx(base + 0.5, abs=TOL)
    # -D loss is the Wasserstein estimate E[C(x)] - E[C(G(z))]
    assert -base == pytest.approx(_mean(REAL) - _mean(FAKE), abs=TOL)
    assert LOSSES.get("wasserstein").wasserstein_estimate is True


# -- hinge ------------------------------------------------------------------------------------

def test_hinge_zero_when_margins_satisfied():
    real = _t([1.0, 2.5, 7.0], requires_grad=True)  # all >= +1
    fake = _t([-1.0, -3.0], requires_grad=True)  # all <= -1
    d = losses.d_hinge(real_logits=real, fake_logits=fake)
    assert d.item() == 0.0
    d.backward()
    assert real.grad.abs().max().item() == 0.0 and fake.grad.abs().max().item() == 0.0


def test_hinge_counts_only_violated_margins():
    # real 0.5 violates by 0.5; fake -0.25 violates by 0.75; the others satisfy their margins
    d = losses.d_hinge(real_logits=_t([0.5, 3.0]), fake_logits=_t([-0.25, -2.0])).item()
    assert d == pytest.approx(0.5 / 2 + 0.75 / 2, abs=TOL)


def test_hinge_generator_is_minus_mean_fake_score():
    assert LOSSES.get("hinge").g(fake_logits=_t(FAKE)).item() == pytest.approx(-_mean(FAKE), abs=TOL)


# -- least squares ----------------------------------------------------------------------------

def test_least_squares_minimum_at_real1_fake0():
    real = _t([1.0, 1.0, 1.0], requires_grad=True)
    fake = _t([0.0, 0.0], requires_grad=True)
    d = losses.d_least_squares(real_logits=real, fake_logits=fake)
    assert d.item() == 0.0
    d.backward()
    assert real.grad.abs().max().item() == 0.0 and fake.grad.abs().max().item() == 0.0
    for dr, df in [(0.1, 0.0), (-0.1, 0.0), (0.0, 0.1), (0.0, -0.1), (0.2, -0.3)]:
        moved = losses.d_least_squares(real_logits=_t([1.0 + dr] * 3), fake_logits=_t([df] * 2)).item()
        assert moved == pytest.approx(0.5 * dr ** 2 + 0.5 * df ** 2, abs=TOL)
        assert moved > 0.0
    # G's optimum is fake scores at c = 1
    assert losses.g_least_squares(fake_logits=_t([1.0, 1.0])).item() == 0.0
    assert losses.g_least_squares(fake_logits=_t([0.0])).item() == pytest.approx(0.5, abs=TOL)


# -- registry ---------------------------------------------------------------------------------

def test_expected_losses_are_registered():
    assert set(LOSSES.keys()) >= {"minimax", "ns", "wasserstein", "hinge", "ls"}
    assert LOSSES.keys() == sorted(LOSSES.keys())


@pytest.mark.parametrize("typo, suggestion", [("minmax", "minimax"), ("hinj", "hinge"),
                                              ("wasserstien", "wasserstein")])
def test_unknown_name_suggests_closest(typo, suggestion):
    with pytest.raises(UnknownNameError) as info:
        LOSSES.get(typo)
    msg = str(info.value)
    assert f"did you mean '{suggestion}'" in msg
    assert typo in msg
    for name in LOSSES.keys():  # lists the valid choices
        assert name in msg


def test_unknown_name_without_close_match_lists_choices():
    with pytest.raises(UnknownNameError) as info:
        LOSSES.get("zzzzzzzzzz")
    assert "did you mean" not in str(info.value)
    assert "hinge" in str(info.value)
    assert isinstance(info.value, KeyError)  # still catchable as a lookup error


def test_duplicate_registration_rejected():
    original = LOSSES.get("hinge")
    n = len(LOSSES)
    dup = AdversarialLoss(losses.d_hinge, losses.g_wasserstein, probabilistic=False,
                          wasserstein_estimate=True)
    with pytest.raises(ValueError, match="already registered"):
        LOSSES.register("hinge")(dup)
    assert LOSSES.get("hinge") is original
    assert len(LOSSES) == n


def test_wrong_type_registration_rejected():
    n = len(LOSSES)
    with pytest.raises(TypeError):
        LOSSES.register("test_only_not_a_loss")(lambda *, real_logits, fake_logits: real_logits.mean())
    assert "test_only_not_a_loss" not in LOSSES
    assert len(LOSSES) == n


def test_registry_rejects_duplicates_on_a_fresh_registry():
    reg = Registry("thing", check=callable)
    reg.register("a")(lambda: 1)
    with pytest.raises(ValueError):
        reg.register("a")(lambda: 2)
    assert reg.get("a")() == 1
    with pytest.raises(TypeError):
        reg.register("")
