"""Checks of ``ganforge.augment``: DiffAugment ops (hand-computed), p gating, ADA, instance noise.

DiffAugment is Zhao et al. 2020 (constants of its [-1, 1] reference implementation), ADA's p
controller is Karras et al. 2020, instance noise Sønderby et al. 2016. All tensors are tiny.
"""

from __future__ import annotations

import math

import pytest
import torch

from ganforge import augment as A
from ganforge.augment import AUGMENTATIONS, AdaptiveP, Augment, diff_augment

B, C, H, W = 8, 3, 16, 16


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(b=B, c=C, h=H, w=W, seed=1) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=_gen(seed)) * 2 - 1  # in [-1, 1)


def _clone(g: torch.Generator) -> torch.Generator:
    g2 = torch.Generator()
    g2.set_state(g.get_state())
    return g2


# ------------------------------------------------------------------ every augmentation


@pytest.mark.parametrize("name", ["color", "translation", "cutout", "brightness", "saturation", "contrast"])
def test_each_augmentation_changes_images_keeps_shape_and_sane_range(name):
    x = _images()
    y = AUGMENTATIONS.get(name)(x, generator=_gen())
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    assert y.abs().max() <= 6.0  # un-clamped as in the paper, but bounded
    changed = (y != x).flatten(1).any(1)
    assert changed.sum() >= B - 1  # (a zero translation may leave one sample intact)


def test_policy_parsing_and_did_you_mean():
    assert A.parse_policy(" color, translation ,cutout ") == ["color", "translation", "cutout"]
    assert A.parse_policy("") == []
    with pytest.raises(ValueError, match="did you mean 'translation'"):
        A.parse_policy("color,translaton")
    with pytest.raises(ValueError, match="twice"):
        A.parse_policy("color,color")


# ------------------------------------------------------------------ color


def test_color_ops_match_hand_computed_values():
    # one sample, 3 channels, 1x2 pixels
    x = torch.tensor([[[[0.2, -0.4]], [[0.6, 0.0]], [[-0.2, 0.4]]]], dtype=torch.float64)
    y = A.brightness(x, torch.tensor([0.1]))
    assert torch.allclose(y, x + 0.1)
    # saturation: channel means per pixel are 0.2 and 0.0; scale 0.5
    y = A.saturation(x, torch.tensor([0.5]))
    expect = torch.tensor([[[[0.2, -0.2]], [[0.4, 0.0]], [[0.0, 0.2]]]], dtype=torch.float64)
    assert torch.allclose(y, expect)
    # contrast: image mean (0.2-0.4+0.6+0-0.2+0.4)/6 = 0.1; scale 1.5
    y = A.contrast(x, torch.tensor([1.5]))
    expect = torch.tensor([[[[0.25, -0.65]], [[0.85, -0.05]], [[-0.35, 0.55]]]], dtype=torch.float64)
    assert torch.allclose(y, expect)


def test_rand_color_uses_documented_draws_and_ranges():
    x = _images(b=4)
    g = _gen(5)
    r = _clone(g)
    y = A.rand_color(x, generator=g)
    ub, us, uc = (torch.rand(4, generator=r) for _ in range(3))
    expect = A.contrast(A.saturation(A.brightness(x, ub - 0.5), 2 * us), uc + 0.5)
    assert torch.allclose(y, expect)
    # by hand for sample 0, pixel (0, 0)
    v = x[:, :, 0, 0] + (ub - 0.5)[:, None]  # after brightness: (B, C)
    m = v.mean(1, keepdim=True)
    v = (v - m) * (2 * us)[:, None] + m
    xb = x + (ub - 0.5).reshape(-1, 1, 1, 1)
    xs = (xb - xb.mean(1, keepdim=True)) * (2 * us).reshape(-1, 1, 1, 1) + xb.mean(1, keepdim=True)
    img_mean = xs.mean((1, 2, 3))  # (B,)
    v = (v - img_mean[:, None]) * (uc + 0.5)[:, None] + img_mean[:, None]
    assert torch.allclose(y[:, :, 0, 0], v, atol=1e-6)


# ------------------------------------------------------------------ translation


def test_translate_moves_pixel_and_zero_fills():
    x = -torch.ones(2, 1, 8, 8)
    x[:, :, 3, 4] = 1.0
    y = A.translate(x, torch.tensor([2, -1]), torch.tensor([-3, 1]))
    assert y[0, 0, 5, 1] == 1.0 and y[1, 0, 2, 5] == 1.0
    assert (y == 1).sum() == 2
    # uncovered rows/cols are 0 (mid-grey): sample 0 shifted down 2 and left 3
    assert (y[0, 0, :2, :] == 0).all() and (y[0, 0, :, -3:] == 0).all()
    assert (y[0, 0, 2:, :5][y[0, 0, 2:, :5] != 1] == -1).all()  # the rest is the moved content


def test_rand_translation_shift_is_at_most_an_eighth():
    n = 64
    x = -torch.ones(n, 1, H, W)
    x[:, :, 8, 7] = 1.0
    y = A.rand_translation(x, generator=_gen(3))
    assert A.max_shift(H) == 2
    shifts = set()
    for b in range(n):  # inspection only; the op itself is vectorised
        pos = (y[b, 0] == 1).nonzero()
        assert len(pos) == 1
        dy, dx = pos[0, 0].item() - 8, pos[0, 1].item() - 7
        assert abs(dy) <= H // 8 and abs(dx) <= W // 8
        shifts.add((dy, dx))
        vals = set(y[b].unique().tolist())
        assert vals <= {-1.0, 0.0, 1.0}
        assert (0.0 in vals) == (dy != 0 or dx != 0)  # zero fill appears iff shifted
    assert len(shifts) > 10  # shifts are per sample


# ------------------------------------------------------------------ cutout


def test_cutout_explicit_positions_clip_at_borders():
    x = torch.ones(3, 2, 8, 8)
    y = A.cutout(x, torch.tensor([2, -2, 6]), torch.tensor([1, 5, -3]), (4, 4))
    assert (y[0, :, 2:6, 1:5] == 0).all() and (y[0] == 0).sum() == 2 * 16
    assert (y[1, :, 0:2, 5:8] == 0).all() and (y[1] == 0).sum() == 2 * 2 * 3
    assert (y[2, :, 6:8, 0:1] == 0).all() and (y[2] == 0).sum() == 2 * 2 * 1


def test_rand_cutout_zeroes_one_clipped_half_size_square_per_sample():
    n = 64
    x = torch.ones(n, C, H, W)
    y = A.rand_cutout(x, generator=_gen(4))
    sh, sw = A.cutout_size(H, W)
    assert (sh, sw) == (H // 2, W // 2)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    zero = y[:, 0] == 0  # (n, H, W)
    assert torch.equal(zero.unsqueeze(1).expand(-1, C, -1, -1), y == 0)  # same for every channel
    full = 0
    for b in range(n):
        rows = zero[b].any(1).nonzero().flatten()
        cols = zero[b].any(0).nonzero().flatten()
        r0, r1, c0, c1 = rows.min().item(), rows.max().item() + 1, cols.min().item(), cols.max().item() + 1
        assert zero[b].sum() == (r1 - r0) * (c1 - c0) and zero[b, r0:r1, c0:c1].all()  # a rectangle
        # full side unless clipped by a border; at least half of each side stays inside
        assert (r1 - r0 == sh) or r0 == 0 or r1 == H
        assert (c1 - c0 == sw) or c0 == 0 or c1 == W
        assert r1 - r0 >= sh // 2 and c1 - c0 >= sw // 2
        full += (r1 - r0 == sh) and (c1 - c0 == sw)
    assert 0 < full < n  # both unclipped and clipped squares occur


# ------------------------------------------------------------------ gradients


def test_gradients_flow_through_the_full_policy():
    x = _images().requires_grad_(True)
    y = diff_augment(x, "color,translation,cutout", generator=_gen())
    (g,) = torch.autograd.grad((y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("name", ["color", "translation", "cutout"])
def test_gradcheck_with_fixed_generator_state(name):
    x = (torch.rand(2, 2, 4, 4, generator=_gen(7), dtype=torch.float64) * 2 - 1).requires_grad_(True)
    fn = AUGMENTATIONS.get(name)
    assert torch.autograd.gradcheck(lambda t: fn(t, generator=_gen(11)), (x,), eps=1e-6, atol=1e-5)


# ------------------------------------------------------------------ probability p


def test_p_zero_is_identity_and_p_one_augments_every_sample():
    x = _images(b=32)
    assert torch.equal(diff_augment(x, "color,translation,cutout", p=0.0, generator=_gen()), x)
    y = diff_augment(x, "color,cutout", p=1.0, generator=_gen())
    assert (y != x).flatten(1).any(1).all()


def test_p_half_augments_about_half_and_rest_unchanged():
    n = 400
    x = _images(b=n, c=1, h=4, w=4)
    g = _gen(2)
    r = _clone(g)
    y = diff_augment(x, "color", p=0.5, generator=g)
    gate = torch.rand(n, generator=r) < 0.5  # the documented first draw
    changed = (y != x).flatten(1).any(1)
    assert torch.equal(changed, gate)
    assert abs(changed.float().mean().item() - 0.5) < 0.1
    assert torch.equal(y[~gate], x[~gate])
    # two augmentations gated independently: P(untouched) = 1/4
    y2 = diff_augment(x, "color,cutout", p=0.5, generator=_gen(9))
    assert abs((y2 == x).flatten(1).all(1).float().mean().item() - 0.25) < 0.08


# ------------------------------------------------------------------ Augment: reproducibility, state


def test_same_seed_same_output_and_real_fake_calls_differ():
    x = _images()
    a1, a2 = Augment("color,translation,cutout", seed=3), Augment("color,translation,cutout", seed=3)
    y1, y2 = a1(x, 0), a2(x, 0)
    assert torch.equal(y1, y2)
    assert not torch.equal(a1(x, 0), y1)  # a second (e.g. fake-batch) call draws fresh transforms
    ext = Augment("color", generator=_gen(3))
    assert "generator" not in ext.state_dict()


def test_state_dict_round_trip_continues_identically():
    kw = dict(policy="color,translation,cutout", ada_target=0.6, ada_interval=2, ada_kimg=0.1,
              batch_size=8, noise=0.1, noise_steps=10, seed=1)
    a = Augment(**kw)
    x = _images()
    for s in range(3):
        a(x, s)
        a.observe(torch.ones(B))
    state = a.state_dict()
    b = Augment(**{**kw, "seed": 99})
    b.load_state_dict(state)
    assert b.p == a.p
    for s in range(3, 6):
        assert torch.equal(a(x, s), b(x, s))
        a.observe(torch.ones(B))
        b.observe(torch.ones(B))
        assert a.p == b.p
    assert {k: v.item() for k, v in a.stats().items()} == {k: v.item() for k, v in b.stats().items()}
    with pytest.raises(ValueError, match="ADA"):
        Augment("color").load_state_dict(state)


def test_state_survives_torch_save_weights_only(tmp_path):
    a = Augment("color", ada_target=0.5, ada_interval=2, ada_kimg=1, batch_size=4)
    a.observe(torch.ones(4))
    torch.save(a.state_dict(), tmp_path / "s.pt")
    b = Augment("color", ada_target=0.5, ada_interval=2, ada_kimg=1, batch_size=4, seed=5)
    b.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    a.observe(torch.ones(4))
    b.observe(torch.ones(4))
    assert a.p == b.p > 0
    x = _images(b=4)
    assert torch.equal(a(x, 0), b(x, 0))


def test_augment_validation_messages():
    with pytest.raises(ValueError, match="did you mean 'cutout'"):
        Augment("cutuot")
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        Augment("color", p=1.5)
    with pytest.raises(ValueError, match="needs an augmentation policy"):
        Augment("", ada_target=0.6)
    with pytest.raises(ValueError, match="ada_target"):
        Augment("color", ada_target=1.2)
    with pytest.raises(ValueError, match="noise"):
        Augment(noise=-1.0)
    with pytest.raises(ValueError, match="speed_kimg"):
        Augment("color", ada_target=0.6, ada_kimg=0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        Augment("color")(torch.zeros(4, 2), 0)


def test_enabled_and_p_defaults():
    assert not Augment().enabled
    assert Augment("color").enabled and Augment("color").p == 1.0
    assert not Augment("color", p=0.0).enabled
    assert Augment("color", ada_target=0.6).enabled and Augment("color", ada_target=0.6).p == 0.0
    assert Augment(noise=0.1, noise_steps=5).enabled
    assert Augment().stats() == {}
    x = torch.randn(4, 2)  # noise alone works on toy (B, D) data
    assert Augment()(x, 0) is x


# ------------------------------------------------------------------ ADA


def test_ada_step_size_formula_rise_and_clamp():
    ada = AdaptiveP(target=0.6, interval=4, speed_kimg=0.1, batch_size=8)
    step = 8 * 4 / (0.1 * 1000)
    assert ada.step_size == pytest.approx(step) == pytest.approx(0.32)
    expected = 0.0
    for k in range(4 * 5):
        ada.observe(torch.full((8,), 2.0))  # D confident on reals: r_t = 1 > target
        if (k + 1) % 4 == 0:
            expected = min(1.0, expected + step)
            assert ada.rt == 1.0
        assert ada.p == pytest.approx(expected)
    assert ada.p == 1.0


def test_ada_falls_on_negative_logits_and_clamps_at_zero():
    ada = AdaptiveP(target=0.6, interval=2, speed_kimg=0.05, batch_size=10, p=0.5)
    step = 10 * 2 / 50
    ada.observe(-torch.ones(10))
    assert ada.p == 0.5  # no update before `interval` observations
    ada.observe(-torch.ones(10))
    assert ada.rt == -1.0 and ada.p == pytest.approx(0.5 - step)
    for _ in range(10):
        ada.observe(-torch.ones(10))
    assert ada.p == 0.0


def test_ada_rt_is_mean_sign_over_the_interval():
    ada = AdaptiveP(target=0.6, interval=2, speed_kimg=1, batch_size=4, p=0.5)
    ada.observe(torch.tensor([1.0, 2.0, -1.0, 3.0]))
    ada.observe(torch.tensor([-1.0, -2.0, 0.5, 0.1]))
    assert ada.rt == pytest.approx(2 / 8)  # 5 positive, 3 negative
    assert ada.p == pytest.approx(0.5 - 4 * 2 / 1000)  # r_t < target: p falls


def test_augment_ada_drives_p_and_reports_stats():
    a = Augment("translation", ada_target=0.6, ada_interval=1, ada_kimg=0.01, batch_size=2)
    assert "aug/rt" not in a.stats() and a.stats()["aug/p"].item() == 0.0
    a.observe(torch.ones(2))
    s = a.stats()
    assert s["aug/p"].item() == pytest.approx(0.2) and s["aug/rt"].item() == 1.0


# ------------------------------------------------------------------ instance noise


def test_instance_noise_std_anneals_linearly_to_zero():
    a = Augment(noise=0.5, noise_steps=100, seed=0)
    x = torch.zeros(64, 1, 16, 16)
    for step, sigma in [(0, 0.5), (50, 0.25), (100, 0.0), (150, 0.0)]:
        y = a(x, step)
        assert a.sigma(step) == pytest.approx(sigma)
        assert y.std().item() == pytest.approx(sigma, abs=0.02)
        assert a.stats()["aug/sigma"].item() == pytest.approx(sigma)
    assert A.noise_sigma(0.3, 1000, 0) == 0.3  # noise_steps = 0: constant
    assert math.isclose(A.noise_sigma(1.0, 25, 100), 0.75)
