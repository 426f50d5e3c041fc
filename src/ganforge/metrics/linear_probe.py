"""A linear probe: multinomial logistic regression fit on the features of labelled training
samples, scored by its accuracy on held-out ones. Pure maths on tensors, deterministic.

The fit minimises ``mean cross-entropy + l2 / 2 * ||W||^2`` (the intercept is not penalised) on
features standardised with the training mean and standard deviation, by full-batch L-BFGS in
float64 from zero weights. This is scikit-learn's ``LogisticRegression(C=1 / (l2 * n))`` objective
(``n`` training samples), which the tests compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LINEAR_PROBE = "linear_probe"


def fit_logistic_regression(x: Tensor, y: Tensor, *, num_classes: int = 0, l2: float = 1e-3,
                            max_iter: int = 200) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(W (K, F), b (K,), mean (F,), std (F,)) of the probe fit on ``x`` (N, F) and labels ``y`` (N,)."""
    if x.dim() != 2 or y.shape != x.shape[:1]:
        raise ValueError(f"need features (N, F) and labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    if l2 <= 0:
        raise ValueError(f"l2 must be > 0, got {l2}")
    x, y = x.detach().double().cpu(), y.detach().long().cpu()
    k = num_classes or int(y.max()) + 1
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-8)
    z = (x - mean) / std
    W = torch.zeros(k, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ W.T + b, y) + 0.5 * l2 * W.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach(), b.detach(), mean, std


def predict(params: tuple[Tensor, Tensor, Tensor, Tensor], x: Tensor) -> Tensor:
    """Class predictions (N,) of a fit probe on features ``x`` (N, F)."""
    W, b, mean, std = params
    return (((x.detach().double().cpu() - mean) / std) @ W.T + b).argmax(1)


def linear_probe_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *,
                          num_classes: int = 0, l2: float = 1e-3, max_iter: int = 200) -> float:
    """Accuracy on (test_x, test_y) of the probe fit on (train_x, train_y)."""
    params = fit_logistic_regression(train_x, train_y, num_classes=num_classes, l2=l2, max_iter=max_iter)
    return (predict(params, test_x) == test_y.cpu()).double().mean().item()


__all__ = ["LINEAR_PROBE", "fit_logistic_regression", "linear_probe_accuracy", "predict"]
