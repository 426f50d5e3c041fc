"""Hand-computed checks of ``ganforge.regularizers``.

Critics whose input-gradient is known in closed form:

- linear  D(x) = <w, x> + b: grad_x D = w everywhere, so GP = (||w|| - 1)^2 and
  LP = max(0, ||w|| - 1)^2 whatever the interpolates are;
- quadratic D(x) = sum(x^2): grad_x D = 2 x, so the penalties depend on where x_hat lies,
  which we compute by hand from a given per-sample alpha.

WGAN-GP (Gulrajani et al. 2017, Algorithm 1) draws ONE epsilon ~ U[0, 1] per sample; WGAN-LP is
Petzka et al. 2018; R1/R2 follow Mescheder et al. 2018 (R1 = gamma/2 E||grad D(x)||^2).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganforge import regularizers as R
from ganforge.regularizers import REGULARIZERS

TOL = 1e-6


def _linear_critic(w, b=0.3):
    """nn.Linear(d, 1) with weight w and bias b; float64 for exact comparisons."""
    lin = nn.Linear(len(w), 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([w], dtype=torch.float64))
        lin.bias.fill_(b)
    return lin


def _quadratic(x):
    return x.pow(2).flatten(1).sum(1)  # (B,)


def _hand_interp(real, fake, alpha):
    return [[a * r + (1 - a) * f for r, f in zip(rr, ff)] for rr, ff, a in zip(real, fake, alpha)]


def _norm(v):
    return math.sqrt(sum(x * x for x in v))


def _t(xs):
    return torch.tensor(xs, dtype=torch.float64)


REAL = [[0.1, 0.2], [1.0, -1.0], [0.3, 0.0]]
FAKE = [[0.0, 0.1], [0.5, 0.5], [-0.2, 0.4]]
ALPHA = [0.25, 0.5, 0.9]

# a W with ||w|| < 1, one with ||w|| > 1, one with ||w|| = 1
W_SMALL = [0.3, 0.4]  # ||w|| = 0.5
W_LARGE = [1.2, -1.6]  # ||w|| = 2
W_UNIT = [0.6, 0.8]  # ||w|| = 1


def test_registered_penalties():
    assert set(REGULARIZERS.keys()) >= {"gp", "lp", "r1", "r2"}
    assert REGULARIZERS.get("gp") is R.gradient_penalty
    assert REGULARIZERS.get("lp") is R.lipschitz_penalty
    assert REGULARIZERS.get("r1") is R.r1_penalty
    assert REGULARIZERS.get("r2") is R.r2_penalty


# -- linear critic ----------------------------------------------------------------------------

@pytest.mark.parametrize("w", [W_SMALL, W_LARGE, W_UNIT])
@pytest.mark.parametrize("alpha", [None, ALPHA])
def test_gp_and_lp_linear_critic(w, alpha):
    n = _norm(w)
    critic = _linear_critic(w)
    kw = dict(critic=critic, real=_t(REAL), fake=_t(FAKE), generator=torch.Generator().manual_seed(0))
    if alpha is not None:
        kw["alpha"] = _t(alpha)
    gp = R.gradient_penalty(**kw)
    lp = R.lipschitz_penalty(**kw)
    assert gp.shape == () and lp.shape == ()
    assert gp.item() == pytest.approx((n - 1.0) ** 2, abs=TOL)
    assert lp.item() == pytest.approx(max(0.0, n - 1.0) ** 2, abs=TOL)


def test_gp_lp_differ_only_below_unit_norm():
    small = _linear_critic(W_SMALL)
    large = _linear_critic(W_LARGE)
    args = dict(real=_t(REAL), fake=_t(FAKE), alpha=_t(ALPHA))
    # ||w|| = 0.5: two-sided GP penalises (0.25), one-sided LP does not
    assert R.gradient_penalty(critic=small, **args).item() == pytest.approx(0.25, abs=TOL)
    assert R.lipschitz_penalty(critic=small, **args).item() == pytest.approx(0.0, abs=TOL)
    # ||w|| = 2: both give 1
    assert R.gradient_penalty(critic=large, **args).item() == pytest.approx(1.0, abs=TOL)
    assert R.lipschitz_penalty(critic=large, **args).item() == pytest.approx(1.0, abs=TOL)


def test_gp_linear_critic_on_images():
    """Image-shaped (B, C, H, W) inputs: the gradient norm is taken over all of C*H*W."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(3 * 4 * 4, generator=g, dtype=torch.float64)
    critic = lambda x: x.flatten(1) @ w + 0.1  # noqa: E731
    real = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    fake = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    n = _norm(w.tolist())
    gp = R.gradient_penalty(critic=critic, real=real, fake=fake, generator=g).item()
    assert gp == pytest.approx((n - 1.0) ** 2, abs=TOL)


@pytest.mark.parametrize("penalty", [R.gradient_penalty, R.lipschitz_penalty])
def test_penalty_is_differentiable_wrt_critic_parameters(penalty):
    """d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||; the bias does not affect grad_x D."""
    critic = _linear_critic(W_LARGE)
    p = penalty(critic=critic, real=_t(REAL), fake=_t(FAKE), alpha=_t(ALPHA))
    p.backward()
    n = _norm(W_LARGE)
    expected = [2.0 * (n - 1.0) * wi / n for wi in W_LARGE]
    got = critic.weight.grad.flatten().tolist()
    assert got == pytest.approx(expected, abs=TOL)
    assert max(abs(v) for v in got) > 0.1  # non-zero
    assert critic.bias.grad is None or critic.bias.grad.abs().max().item() == 0.0


def test_lp_has_no_gradient_inside_unit_ball():
    critic = _linear_critic(W_SMALL)
    p = R.lipschitz_penalty(critic=critic, real=_t(REAL), fake=_t(FAKE), alpha=_t(ALPHA))
    p.backward()
    assert critic.weight.grad is None or critic.weight.grad.abs().max().item() == 0.0
    critic.zero_grad()
    R.gradient_penalty(critic=critic, real=_t(REAL), fake=_t(FAKE), alpha=_t(ALPHA)).backward()
    n = _norm(W_SMALL)  # GP pulls ||w|| up towards 1: grad = 2 (n - 1) w / n
    assert critic.weight.grad.flatten().tolist() == pytest.approx(
        [2.0 * (n - 1.0) * wi / n for wi in W_SMALL], abs=TOL)


# -- quadratic critic ------------------------------------------------------------------------

def test_gp_and_lp_quadratic_critic_by_hand():
    x_hat = _hand_interp(REAL, FAKE, ALPHA)
    norms = [2.0 * _norm(v) for v in x_hat]  # ||grad|| = ||2 x_hat||
    assert min(norms) < 1.0 < max(norms)  # the data exercise both sides of the LP hinge
    hand_gp = sum((n - 1.0) ** 2 for n in norms) / len(norms)
    hand_lp = sum(max(0.0, n - 1.0) ** 2 for n in norms) / len(norms)
    args = dict(critic=_quadratic, real=_t(REAL), fake=_t(FAKE), alpha=_t(ALPHA))
    assert R.gradient_penalty(**args).item() == pytest.approx(hand_gp, abs=TOL)
    assert R.lipschitz_penalty(**args).item() == pytest.approx(hand_lp, abs=TOL)
    assert hand_lp < hand_gp


def test_gp_uses_alpha_on_real_not_fake():
    """x_hat = alpha * real + (1 - alpha) * fake: alpha = 1 puts x_hat on the real samples."""
    real, fake = _t(REAL), _t(FAKE)
    on_real = R.gradient_penalty(critic=_quadratic, real=real, fake=fake, alpha=_t([1.0, 1.0, 1.0])).item()
    hand_real = sum((2 * _norm(v) - 1) ** 2 for v in REAL) / 3
    assert on_real == pytest.approx(hand_real, abs=TOL)
    on_fake = R.gradient_penalty(critic=_quadratic, real=real, fake=fake, alpha=_t([0.0, 0.0, 0.0])).item()
    hand_fake = sum((2 * _norm(v) - 1) ** 2 for v in FAKE) / 3
    assert on_fake == pytest.approx(hand_fake, abs=TOL)
    assert abs(hand_real - hand_fake) > 0.1  # so swapping real and fake would be caught


# -- one alpha per sample --------------------------------------------------------------------

def _image_pair(b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    fake = torch.randn(b, 3, 5, 5, generator=g, dtype=torch.float64)
    # real - fake is bounded away from zero in every pixel, so the ratio below is well defined
    real = fake + 1.0 + torch.rand(b, 3, 5, 5, generator=g, dtype=torch.float64)
    return real, fake


def _check_per_sample(x_hat, real, fake):
    ratio = (x_hat - fake) / (real - fake)  # (B, C, H, W): alpha at every pixel
    per_sample = ratio.flatten(1)
    spread_within = (per_sample.max(1).values - per_sample.min(1).values).max().item()
    assert spread_within < 1e-9, "alpha varies within a sample (drawn per pixel?)"
    alphas = per_sample[:, 0]
    assert alphas.min().item() >= 0.0 and alphas.max().item() <= 1.0
    assert (alphas.max() - alphas.min()).item() > 0.05, "alpha is shared by the whole batch"
    return alphas


def test_interpolate_draws_one_alpha_per_sample():
    real, fake = _image_pair()
    x_hat = R.interpolate(real, fake, generator=torch.Generator().manual_seed(3))
    assert x_hat.shape == real.shape
    _check_per_sample(x_hat, real, fake)


def test_gradient_penalty_evaluates_critic_at_per_sample_interpolates():
    """Record what the critic sees inside the penalty itself, not just in ``interpolate``."""
    real, fake = _image_pair(seed=5)
    for penalty in (R.gradient_penalty, R.lipschitz_penalty):
        seen = []

        def critic(x):
            seen.append(x.detach().clone())
            return _quadratic(x)

        penalty(critic=critic, real=real, fake=fake, generator=torch.Generator().manual_seed(7))
        assert len(seen) == 1
        _check_per_sample(seen[0], real, fake)


def test_alpha_is_uniform_on_unit_interval():
    """Over many samples the per-sample alphas look like U[0, 1] (mean 1/2, variance 1/12)."""
    b = 4000
    real = torch.ones(b, 2, dtype=torch.float64)
    fake = torch.zeros(b, 2, dtype=torch.float64)
    alphas = R.interpolate(real, fake, generator=torch.Generator().manual_seed(11))[:, 0]
    # standard errors: mean sqrt(1/12/4000) ~ 0.0046, variance ~ 0.0013
    assert abs(alphas.mean().item() - 0.5) < 0.02
    assert abs(alphas.var().item() - 1.0 / 12.0) < 0.006


def test_interpolate_with_given_alpha_is_exact():
    real, fake = _image_pair(b=3, seed=2)
    alpha = _t([0.0, 0.3, 1.0])
    x_hat = R.interpolate(real, fake, alpha=alpha)
    for i, a in enumerate(alpha.tolist()):
        hand = [a * r + (1.0 - a) * f for r, f in zip(real[i].flatten().tolist(), fake[i].flatten().tolist())]
        assert x_hat[i].flatten().tolist() == pytest.approx(hand, abs=1e-12)
    assert torch.equal(x_hat[0], fake[0]) and torch.equal(x_hat[2], real[2])


def test_gradient_penalty_uses_given_alpha():
    real, fake = _image_pair(b=3, seed=4)
    alpha = _t([0.2, 0.7, 0.5])
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return _quadratic(x)

    gp = R.gradient_penalty(critic=critic, real=real, fake=fake, alpha=alpha).item()
    expected = alpha.view(3, 1, 1, 1) * real + (1 - alpha.view(3, 1, 1, 1)) * fake
    assert (seen[0] - expected).abs().max().item() < 1e-12
    hand = sum((2 * _norm(v) - 1) ** 2 for v in expected.flatten(1).tolist()) / 3
    assert gp == pytest.approx(hand, rel=1e-9)


def test_interpolation_is_seeded():
    real, fake = _image_pair()
    a = R.interpolate(real, fake, generator=torch.Generator().manual_seed(9))
    b = R.interpolate(real, fake, generator=torch.Generator().manual_seed(9))
    c = R.interpolate(real, fake, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# -- R1 / R2 ---------------------------------------------------------------------------------

def test_r1_quadratic_critic_by_hand():
    """R1 = 1/2 E||grad D(x)||^2 = 1/2 mean_i ||2 x_i||^2 on REAL samples only."""
    hand = 0.5 * sum(4.0 * _norm(v) ** 2 for v in REAL) / len(REAL)
    r1 = R.r1_penalty(critic=_quadratic, real=_t(REAL), fake=_t(FAKE))
    assert r1.shape == ()
    assert r1.item() == pytest.approx(hand, abs=TOL)
    # fakes play no part
    other = R.r1_penalty(critic=_quadratic, real=_t(REAL), fake=_t(FAKE) * 10)
    assert other.item() == pytest.approx(hand, abs=TOL)


def test_r2_quadratic_critic_by_hand():
    hand = 0.5 * sum(4.0 * _norm(v) ** 2 for v in FAKE) / len(FAKE)
    r2 = R.r2_penalty(critic=_quadratic, real=_t(REAL), fake=_t(FAKE))
    assert r2.item() == pytest.approx(hand, abs=TOL)
    other = R.r2_penalty(critic=_quadratic, real=_t(REAL) * 10, fake=_t(FAKE))
    assert other.item() == pytest.approx(hand, abs=TOL)
    hand_r1 = 0.5 * sum(4.0 * _norm(v) ** 2 for v in REAL) / len(REAL)
    assert abs(hand - hand_r1) > 0.1  # R1 and R2 are distinguishable on these data


def test_r1_linear_critic_and_parameter_gradient():
    """Linear critic: R1 = 1/2 ||w||^2, d/dw = w."""
    critic = _linear_critic(W_LARGE)
    r1 = R.r1_penalty(critic=critic, real=_t(REAL))
    assert r1.item() == pytest.approx(0.5 * _norm(W_LARGE) ** 2, abs=TOL)
    r1.backward()
    assert critic.weight.grad.flatten().tolist() == pytest.approx(W_LARGE, abs=TOL)


def test_r1_finite_where_input_gradient_is_zero():
    """A ReLU critic has zero input-gradient on dead samples; the penalty and its parameter
    gradient must stay finite there (||0|| has no derivative)."""
    w = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    critic = lambda x: torch.relu(x @ w)  # noqa: E731
    real = _t([[1.0, 0.0], [0.0, 1.0]])  # second sample: relu inactive, grad_x = 0
    r1 = R.r1_penalty(critic=critic, real=real)
    assert r1.item() == pytest.approx(0.5 * (5.0 + 0.0) / 2, abs=TOL)
    r1.backward()
    assert torch.isfinite(w.grad).all()
    assert w.grad.tolist() == pytest.approx([0.5, -1.0], abs=TOL)  # d/dw 1/4 ||w||^2 = w / 2
    w.grad = None
    gp = R.gradient_penalty(critic=critic, real=real, fake=real * 0.5, alpha=_t([0.5, 0.5]))
    gp.backward()
    assert torch.isfinite(w.grad).all()


# -- weight clipping -------------------------------------------------------------------------

def test_clip_weights_clamps_every_parameter():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.LeakyReLU(0.2),
                        nn.Sequential(nn.Linear(8, 3), nn.Linear(3, 1)))
    c = 0.0625  # exactly representable in float32, so the bound check below is exact
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10.0)
        # plant exact in-range, boundary and out-of-range values
        net[0].weight[0, :4] = torch.tensor([0.01, -0.06, 0.0625, -0.0625])
        net[0].weight[1, :2] = torch.tensor([3.0, -7.0])
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    buffers_before = {k: v.clone() for k, v in net.named_buffers()}
    assert any((v.abs() > c).any() for v in before.values())

    R.clip_weights_(net, c)

    for name, p in net.named_parameters():
        old = before[name]
        assert p.abs().max().item() <= c, name
        inside = old.abs() <= c
        assert torch.equal(p[inside], old[inside]), f"{name}: in-range values changed"
        assert torch.equal(p[~inside], c * old[~inside].sign()), f"{name}: not clipped to +-c"
    assert torch.equal(net[0].weight[0, :4], torch.tensor([0.01, -0.06, 0.0625, -0.0625]))
    assert torch.equal(net[0].weight[1, :2], torch.tensor([c, -c]))
    # buffers (BatchNorm running statistics) are not weights and are left alone
    for name, b in net.named_buffers():
        assert torch.equal(b, buffers_before[name]), name


def test_clip_weights_keeps_parameters_trainable():
    net = nn.Linear(3, 1)
    with torch.no_grad():
        net.weight.fill_(2.0)
    R.clip_weights_(net, 0.01)
    assert net.weight.requires_grad and net.weight.grad_fn is None
    net(torch.ones(2, 3)).sum().backward()  # in-place clamp under no_grad leaves a usable leaf
    assert net.weight.grad is not None
