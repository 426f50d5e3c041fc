"""Gram matrices and the style loss (ganforge.style) against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from ganforge.style import gram_matrix, style_loss

# one sample, C=2, H=1, W=3: rows f0 = (1, 2, 3), f1 = (0, -1, 2)
F1 = torch.tensor([[[[1.0, 2.0, 3.0]], [[0.0, -1.0, 2.0]]]])
# f0.f0 = 14, f0.f1 = 0 - 2 + 6 = 4, f1.f1 = 5; divided by C*H*W = 6
G1 = torch.tensor([[[14.0, 4.0], [4.0, 5.0]]]) / 6


def test_gram_matrix_by_hand():
    assert torch.allclose(gram_matrix(F1), G1)
    two = torch.cat([F1, 2 * F1])
    assert torch.allclose(gram_matrix(two), torch.cat([G1, 4 * G1]))
    with pytest.raises(ValueError):
        gram_matrix(torch.zeros(2, 3))


def test_style_loss_by_hand():
    style = torch.zeros_like(F1)  # Gram 0
    # mean over the 4 entries of (G1 - 0)^2 = (196 + 16 + 16 + 25) / 36 / 4
    expected = (196 + 16 + 16 + 25) / 36 / 4
    got = style_loss(fake_features=[F1], style_features=[style])
    assert abs(got.item() - expected) < 1e-6
    # two layers, weights, and one style image broadcast over a batch of two
    g2 = torch.cat([F1, F1])
    got = style_loss(fake_features=[g2, F1], style_features=[style, F1], weights=[0.5, 3.0])
    assert abs(got.item() - 0.5 * expected) < 1e-6
    assert style_loss(fake_features=[F1], style_features=[F1.clone()]).item() == 0


def test_style_loss_gradient_reaches_fake_only():
    fake = F1.clone().requires_grad_(True)
    style = (F1 * 0.5).requires_grad_(True)
    style_loss(fake_features=[fake], style_features=[style]).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert style.grad is None
    with pytest.raises(ValueError, match="one style feature map per fake one"):
        style_loss(fake_features=[F1], style_features=[])


# -- as a loss term of the image-to-image objectives (loss.terms.style) ------------------------------

def test_style_term_through_the_paired_objective():
    """loss.terms.style on pix2pix: the G loss gains weight x the Gram distance of the shipped
    Fashion-MNIST classifier's three ReLU feature maps of G(y) and the target x, computed here by
    hand (explicit einsum Grams)."""
    from torch import nn

    from ganforge.config import resolve
    from ganforge.features import FmnistFeatures
    from ganforge.objectives import GANObjective
    from ganforge.validation import validate
    cfg = validate(resolve("pix2pix", overrides=["loss.terms={l1: 0, style: 1000}", "model.g.width=8",
                                                 "model.d.width=8"]))
    obj = GANObjective(cfg, generator=torch.Generator().manual_seed(0), use_y=True)
    g = torch.Generator().manual_seed(1)
    real, y = torch.rand(3, 1, 28, 28, generator=g) * 2 - 1, torch.rand(3, 1, 28, 28, generator=g) * 2 - 1
    fake = (torch.rand(3, 1, 28, 28, generator=g) * 2 - 1).requires_grad_(True)

    def D(x, cond):
        return x.mean((1, 2, 3))  # any critic: the adversarial term is checked elsewhere

    loss, stats = obj.g_loss(None, D, (real, y), fake=fake)
    net = FmnistFeatures().net

    def maps(x):
        out, h = [], x
        for layer in net.trunk:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                out.append(h.clone())
        return out

    with torch.no_grad():
        want = 0.0
        for a, b in zip(maps(fake.detach()), maps(real)):
            _, c, hh, ww = a.shape
            ga = torch.einsum("bchw,bdhw->bcd", a, a) / (c * hh * ww)
            gb = torch.einsum("bchw,bdhw->bcd", b, b) / (c * hh * ww)
            want += ((ga - gb) ** 2).mean().item()
    assert len(maps(real)) == 3
    assert stats["loss/G/style"].item() == pytest.approx(want, rel=1e-4) and want > 0
    adv = stats["loss/G/adv"].item()
    assert loss.item() == pytest.approx(adv + 1000 * want, rel=1e-4)
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    _, same = obj.g_loss(None, D, (real, y), fake=real.clone())
    assert same["loss/G/style"].item() == pytest.approx(0.0, abs=1e-10)


def test_style_term_through_the_cycle_objective():
    """CycleGAN with loss.terms.style: each translation against the real batch of its domain."""
    from ganforge.config import resolve
    from ganforge.nets.cyclegan import CycleDiscriminator, CycleGenerator
    from ganforge.objectives import CycleObjective
    from ganforge.objectives.terms import term_style
    cfg = resolve("cyclegan", overrides=["loss.terms={cycle: 10, identity: 0, style: 500}"])
    torch.manual_seed(0)
    G = CycleGenerator(out_shape=(1, 28, 28), cond_shape=(1, 28, 28), width=4, n_blocks=1)  # .ab, .ba
    D = CycleDiscriminator(in_shape=(1, 28, 28), cond_shape=(1, 28, 28), width=4)  # .a, .b
    obj = CycleObjective(cfg, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(2)
    b, a = torch.rand(2, 1, 28, 28, generator=g) * 2 - 1, torch.rand(2, 1, 28, 28, generator=g) * 2 - 1
    with_style, stats = obj.g_loss(G, D, (b, a))
    with torch.no_grad():
        want = term_style(fake=G.ab(a), real=b) + term_style(fake=G.ba(b), real=a)
    assert stats["loss/G/style"].item() == pytest.approx(want.item(), rel=1e-4)
    rest = stats["loss/G/adv_a"] + stats["loss/G/adv_b"] + 10 * stats["loss/G/cycle"]
    assert with_style.item() == pytest.approx((rest + 500 * want).item(), rel=1e-4)
