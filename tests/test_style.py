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
