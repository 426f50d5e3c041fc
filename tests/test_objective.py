"""The objectives behind the loop's phases: conditioning, generator reuse, augmentation,
label smoothing, extra loss terms, CycleGAN's cycle terms, consistency regularisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import TINY_TOY
from ganforge.config import ConfigError, resolve
from ganforge.losses import d_minimax
from ganforge.objectives import CycleObjective, GANObjective
from ganforge.regularizers import consistency_penalty
from ganforge.reporting import Reporter
from ganforge.loop import build_state, train_step
from ganforge.checkpoint import restore_run as restore, save_run as save

IMG = ("model.arch=dcgan", "model.g.width=8", "model.d.width=8", "model.z_dim=8", "train.batch_size=8",
       "train.steps=4", "train.log_every=2", "train.sample_every=0", "train.ckpt_every=0",
       "train.progress=false", "train.threads=1", "train.device=cpu")


@pytest.fixture
def img_cfg(runs_dir):
    """``img_cfg(dataset_name, *overrides, preset="dcgan")``: a tiny DCGAN-sized image config."""
    def make(name, *extra, preset="dcgan"):
        return resolve(preset, overrides=[*IMG, f"out={runs_dir}", f"data.name={name}", *extra])
    return make


def test_label_smoothing_matches_the_cross_entropy_with_target_1_minus_s():
    r, f = torch.tensor([0.3, -1.2, 2.0]), torch.tensor([0.1, -0.4, 0.5])
    s = 0.1
    want = F.binary_cross_entropy_with_logits(r, torch.full_like(r, 1 - s)) + \
        F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    assert torch.allclose(d_minimax(real_logits=r, fake_logits=f, smooth=s), want, atol=1e-6)
    assert torch.allclose(d_minimax(real_logits=r, fake_logits=f, smooth=0.0),
                          d_minimax(real_logits=r, fake_logits=f))


def test_label_smoothing_needs_a_probabilistic_loss(make_cfg):
    with pytest.raises(ConfigError, match="probabilistic"):
        make_cfg("loss.name=hinge", "loss.smooth=0.1")


def test_unknown_loss_term_is_a_config_error(make_cfg):
    with pytest.raises(ConfigError, match="did you mean 'l1'"):
        make_cfg("loss.terms.l11=1")


class _Counting(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, z, y=None):
        self.calls += 1
        return self.net(z, y)


@pytest.mark.parametrize("n_critic,forwards", [(1, 1), (3, 4)])
def test_generator_forwards_per_iteration(make_cfg, n_critic, forwards):
    """One G forward per iteration when the G phase can reuse the D phase's batch (n_critic 1);
    a fresh one for the G step otherwise (as in WGAN)."""
    state = build_state(make_cfg(f"train.n_critic={n_critic}"))
    state.G = _Counting(state.G)
    train_step(state, Reporter())
    assert state.G.calls == forwards


def test_reused_fake_gives_g_a_gradient(make_cfg):
    state = build_state(make_cfg())
    before = [p.detach().clone() for p in state.G.parameters()]
    train_step(state, Reporter())
    assert any(not torch.equal(a, b) for a, b in zip(before, state.G.parameters()))


def test_conditional_labels_reach_both_nets(img_cfg, labelled_dataset):
    """A class-conditional run passes the batch's labels to G and D (and the labels matter)."""
    name = labelled_dataset()
    state = build_state(img_cfg(name, "model.conditional=true", "model.d.cond=projection"))
    seen = {}
    g_fwd, d_fwd = state.G.forward, state.D.forward

    def g_spy(z, y=None):
        seen.setdefault("G", y)
        return g_fwd(z, y)

    def d_spy(x, y=None):
        seen.setdefault("D", y)
        return d_fwd(x, y)

    state.G.forward, state.D.forward = g_spy, d_spy
    train_step(state, Reporter())
    assert seen["G"] is not None and seen["D"] is not None
    assert torch.equal(seen["G"], seen["D"])  # fakes carry the real batch's labels
    assert seen["G"].dtype == torch.long and int(seen["G"].max()) < 3


def test_conditional_needs_labels(img_cfg, image_dataset):
    with pytest.raises(ConfigError, match="labelled dataset"):
        build_state(img_cfg(image_dataset(), "model.conditional=true"))


def test_acgan_adds_the_classifier_loss(img_cfg, labelled_dataset):
    name = labelled_dataset()
    state = build_state(img_cfg(name, preset="acgan"))
    rep = Reporter()
    train_step(state, rep)
    logged = rep.flush()
    for k in ("loss/D/aux_real", "loss/D/aux_fake", "loss/G/aux"):
        assert k in logged and math.isfinite(logged[k]) and logged[k] > 0
    # a random classifier over 3 classes starts near log 3
    assert abs(logged["loss/D/aux_real"] - math.log(3)) < 1.0


def test_diffaugment_reaches_d_and_its_state_resumes_exactly(img_cfg, image_dataset, runs_dir):
    name = image_dataset()
    over = ("augment.policy=color,translation,cutout", "augment.ada_target=0.6", "augment.ada_interval=1",
            "augment.ada_kimg=0.1", "augment.p=0.5", "train.deterministic=true")
    cfg = img_cfg(name, *over)
    state = build_state(cfg)
    rep = Reporter()
    for _ in range(3):
        train_step(state, rep)
    logged = rep.flush()
    assert "aug/p" in logged and logged["aug/p"] != 0.5  # ADA moved p from its start
    p_saved = state.objective.augment.p
    ckpt = save(state, runs_dir / "a")
    for _ in range(2):
        train_step(state, Reporter())
    other = build_state(cfg)
    assert other.objective.augment.p != p_saved
    restore(other, ckpt)
    assert other.objective.augment.p == p_saved
    for _ in range(2):
        train_step(other, Reporter())
    for a, b in zip(state.G.state_dict().values(), other.G.state_dict().values()):
        assert torch.equal(a, b)
    assert state.objective.augment.p == other.objective.augment.p


def test_instance_noise_has_its_std_and_anneals_to_zero(make_cfg):
    state = build_state(make_cfg("augment.noise=0.5", "augment.noise_steps=100"))
    real, _ = state.data.preview(400)
    x = state.objective.aug(real, step=0)
    assert not torch.equal(x, real)
    assert (x - real).std().item() == pytest.approx(0.5, rel=0.35)
    assert torch.equal(state.objective.aug(real, step=100), real)  # annealed to 0


class _Identity(nn.Module):
    def forward(self, x):
        return x


class _Pair(nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.ab, self.ba = a, b


class _Patch(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, y=None):
        return self.conv(x).squeeze(1)


def test_cycle_loss_is_zero_for_identity_maps():
    cfg = resolve("cyclegan", overrides=["loss.pool=0"])
    obj = CycleObjective(cfg, generator=torch.Generator().manual_seed(0))
    G = _Pair(_Identity(), _Identity())
    D = _Pair(_Patch(), _Patch())
    D.a, D.b = D.ab, D.ba
    b, a = torch.rand(4, 1, 8, 8) * 2 - 1, torch.rand(4, 1, 8, 8) * 2 - 1
    _, stats = obj.g_loss(G, D, (b, a))
    assert stats["loss/G/cycle"].item() == 0.0
    assert stats["loss/G/identity"].item() == 0.0


def test_cycle_and_identity_terms_by_hand():
    cfg = resolve("cyclegan", overrides=["loss.pool=0", "loss.terms.cycle=2", "loss.terms.identity=0.5",
                                        "loss.name=ls"])
    obj = CycleObjective(cfg, generator=torch.Generator().manual_seed(0))

    class Shift(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c = c

        def forward(self, x):
            return x + self.c

    G = _Pair(Shift(0.1), Shift(0.3))
    D = nn.Module()
    D.a = D.b = lambda x, y=None: torch.zeros(x.shape[0], 2, 2)
    b, a = torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    loss, stats = obj.g_loss(G, D, (b, a))
    cycle = 0.4 + 0.4  # |ba(ab(a)) - a| = 0.1 + 0.3, and the same the other way round
    identity = 0.1 + 0.3
    adv = 2 * 0.5  # LSGAN G loss 1/2 (0 - 1)^2 for each discriminator
    assert stats["loss/G/cycle"].item() == pytest.approx(cycle)
    assert stats["loss/G/identity"].item() == pytest.approx(identity)
    assert loss.item() == pytest.approx(adv + 2 * cycle + 2 * 0.5 * identity)


def test_l1_term_weight_enters_g_loss():
    cfg = resolve("pix2pix", overrides=["loss.terms.l1=10"])
    obj = GANObjective(cfg, generator=torch.Generator().manual_seed(0))
    obj.use_y = True
    x, y = torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    G = lambda z, cond: cond + 0.25  # noqa: E731
    D = lambda img, cond=None: torch.zeros(img.shape[0])  # noqa: E731
    loss, stats = obj.g_loss(G, D, (x, y))
    assert stats["loss/G/l1"].item() == pytest.approx(0.25)
    assert loss.item() == pytest.approx(math.log(2) + 10 * 0.25, rel=1e-6)  # ns at logit 0 is log 2


def test_consistency_penalty_zero_for_invariant_critic_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
    const = lambda x: x.new_zeros(x.shape[0])  # noqa: E731
    assert consistency_penalty(critic=const, real=real, fake=fake, generator=g).item() == 0.0
    pixel = lambda x: x[:, 0, 4, 4] * 10  # noqa: E731
    assert consistency_penalty(critic=pixel, real=real, fake=fake, generator=g).item() > 0


def test_truncation_reduces_sample_variance():
    from ganforge.nets import sample_latent
    g = torch.Generator().manual_seed(0)
    full = sample_latent("normal", 4000, 8, generator=g)
    trunc = sample_latent("normal", 4000, 8, generator=g, truncation=0.7)
    assert trunc.abs().max() <= 0.7
    assert trunc.var() < 0.5 * full.var()
    with pytest.raises(ValueError):
        sample_latent("uniform", 2, 2, truncation=0.5)


def test_diffaugment_is_applied_to_real_and_fake_in_both_phases(img_cfg, image_dataset):
    """The same augmentation pipeline T sees every D input: reals and fakes in the D phase, fakes
    in the G phase (where gradients flow through T into G)."""
    state = build_state(img_cfg(image_dataset(), "augment.policy=translation,cutout"))
    calls = []
    aug = state.objective.augment
    real_call = aug.__call__

    class Spy:
        def __getattr__(self, name):
            return getattr(aug, name)

        def __call__(self, x, step):
            calls.append(x.requires_grad)
            return real_call(x, step)

    state.objective.augment = Spy()
    train_step(state, Reporter())
    assert len(calls) == 3  # real and fake for the D step, fake for the G step
    assert calls[2] is True  # the G phase's fake keeps its graph through T
