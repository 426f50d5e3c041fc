"""Time-series metrics of TimeGAN (Yoon et al. 2019), as pure functions of tensors and a seed,
and a picture of real and generated series side by side.

- :func:`discriminative_score`: a post-hoc classifier (a 2-layer GRU, its last valid state fed to
  a linear layer) is trained to tell real from generated sequences on a train split; the score is
  ``|accuracy - 0.5|`` on the held-out split. 0 = indistinguishable, 0.5 = always told apart.
- :func:`predictive_score` ("train on synthetic, test on real"): a 1-layer GRU is trained on one
  set of sequences (the generated ones) to predict step t+1 from steps 0..t, and its mean
  absolute error is measured on another set (the real ones). Lower is better. ``target="next"``
  (default) predicts every feature of the next step; ``target="last"`` is TimeGAN's original
  protocol: the last feature of the next step from the other features up to t.

Both train a small net: they are seeded (the global RNG is left untouched), run on the CPU in a
few seconds at their defaults, and accept variable lengths (steps t >= length are ignored).
Values depend on the data's scale: MAE in [0, 1] units is half the MAE in [-1, 1] units.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

DISCRIMINATIVE = "discriminative_score"
PREDICTIVE = "predictive_score"


def _lengths(x: Tensor, lengths: Tensor | None, what: str) -> Tensor:
    if x.dim() != 3:
        raise ValueError(f"{what} must be (N, T, F) sequences, got shape {tuple(x.shape)}")
    if lengths is None:
        return torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
    lengths = lengths.long().cpu()
    if lengths.shape != (x.shape[0],) or lengths.min() < 1 or lengths.max() > x.shape[1]:
        raise ValueError(f"{what} lengths must be (N,) in [1, {x.shape[1]}]")
    return lengths


class _GRU(nn.Module):
    """GRU over the valid steps: per-step outputs (B, T, out) and the last valid state's output (B, out)."""

    def __init__(self, in_dim: int, hidden: int, layers: int, out_dim: int):
        super().__init__()
        self.rnn = nn.GRU(in_dim, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, h_n = self.rnn(packed)
        steps, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, T, hidden)
        return self.out(steps), self.out(h_n[-1])  # (B, T, out), (B, out)


def _train(model: nn.Module, loss_fn, n: int, *, steps: int, batch_size: int, lr: float, gen: torch.Generator):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        loss = loss_fn(idx)
        opt.zero_grad()
        loss.backward()
        opt.step()


def discriminative_score(real: Tensor, fake: Tensor, *, real_lengths: Tensor | None = None,
                         fake_lengths: Tensor | None = None, seed: int = 0, hidden: int = 16,
                         steps: int = 400, batch_size: int = 128, lr: float = 1e-3,
                         train_fraction: float = 0.8) -> float:
    """|held-out accuracy - 0.5| of a 2-layer GRU classifier of real (N, T, F) vs fake (M, T, F).

    The larger set is cut to the size of the smaller (the first samples), so chance is 0.5; each is
    split at random into ``train_fraction`` for training and the rest for testing.
    """
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake sequences differ in shape: {tuple(real.shape)} vs {tuple(fake.shape)}")
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    rl, fl = _lengths(real, real_lengths, "real"), _lengths(fake, fake_lengths, "fake")
    n = min(len(real), len(fake))
    n_train = int(round(train_fraction * n))
    if n_train < 1 or n_train >= n:
        raise ValueError(f"need enough sequences for a train and a test split, got {n} of each")
    gen = torch.Generator().manual_seed(int(seed))
    pr, pf = torch.randperm(len(real), generator=gen)[:n], torch.randperm(len(fake), generator=gen)[:n]
    x = torch.cat([real.detach().float().cpu()[pr], fake.detach().float().cpu()[pf]])  # (2n, T, F)
    lengths = torch.cat([rl[pr], fl[pf]])
    target = torch.cat([torch.ones(n), torch.zeros(n)])
    train = torch.cat([torch.arange(n_train), n + torch.arange(n_train)])
    test = torch.cat([torch.arange(n_train, n), n + torch.arange(n_train, n)])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = _GRU(x.shape[2], hidden, 2, 1)

    def loss_fn(idx):
        i = train[idx]
        return F.binary_cross_entropy_with_logits(model(x[i], lengths[i])[1].squeeze(1), target[i])

    _train(model, loss_fn, len(train), steps=steps, batch_size=batch_size, lr=lr, gen=gen)
    with torch.no_grad():
        pred = model(x[test], lengths[test])[1].squeeze(1) > 0
    acc = (pred.float() == target[test]).float().mean().item()
    return abs(acc - 0.5)


def predictive_score(train: Tensor, test: Tensor, *, train_lengths: Tensor | None = None,
                     test_lengths: Tensor | None = None, seed: int = 0, hidden: int = 16, steps: int = 400,
                     batch_size: int = 128, lr: float = 1e-3, target: str = "next") -> float:
    """MAE on ``test`` (real) of a GRU one-step-ahead predictor trained on ``train`` (generated).

    The MAE is averaged over each test sequence's predicted steps (1..length-1) and targets, then
    over sequences. Sequences need at least 2 steps (and 2 features for ``target="last"``).
    """
    if train.shape[2] != test.shape[2]:
        raise ValueError(f"train and test sequences have different features: {train.shape[2]} vs {test.shape[2]}")
    if target not in ("next", "last"):
        raise ValueError(f"target must be 'next' or 'last', got {target!r}")
    if target == "last" and train.shape[2] < 2:
        raise ValueError("target='last' predicts the last feature from the others: needs >= 2 features")
    sets = []
    for x, lengths, what in ((train, train_lengths, "train"), (test, test_lengths, "test")):
        lengths = _lengths(x, lengths, what)
        if lengths.min() < 2:
            raise ValueError(f"{what} sequences need at least 2 steps to predict a next one")
        x = x.detach().float().cpu()
        inp, out = (x[:, :-1], x[:, 1:]) if target == "next" else (x[:, :-1, :-1], x[:, 1:, -1:])
        valid = (torch.arange(x.shape[1] - 1)[None, :] < (lengths - 1)[:, None]).float()[:, :, None]  # (N, T-1, 1)
        sets.append((inp, out, lengths - 1, valid))
    (xi, xo, xl, xv), (ti, to, tl, tv) = sets

    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = _GRU(xi.shape[2], hidden, 1, xo.shape[2])

    def loss_fn(idx):
        err = (model(xi[idx], xl[idx])[0] - xo[idx]).abs() * xv[idx]
        return err.sum() / (xv[idx].sum() * xo.shape[2])

    _train(model, loss_fn, len(xi), steps=steps, batch_size=batch_size, lr=lr, gen=gen)
    with torch.no_grad():
        err = (model(ti, tl)[0] - to).abs() * tv  # (N, T-1, F')
    per_seq = err.sum((1, 2)) / (tv.sum((1, 2)) * to.shape[2])
    return per_seq.mean().item()


# -- pictures --------------------------------------------------------------------------------------

COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207))


def sequence_plot(real: Tensor | None, fake: Tensor, *, real_lengths: Tensor | None = None,
                  fake_lengths: Tensor | None = None, n: int = 4, features: int = 3,
                  panel: tuple[int, int] = (200, 90)) -> Image.Image:
    """``n`` real sequences (left column) and ``n`` generated ones (right), one panel each, the
    first ``features`` features drawn as coloured lines over the valid steps, all panels on one
    value scale. The picture is ``(2 * panel[0] + 15, n * (panel[1] + 5) + 20)`` pixels; with
    ``real`` None, only the generated column: ``(panel[0] + 5, ...)``."""
    pw, ph = panel
    sets, titles = [], []
    for x, lengths, what in ((real, real_lengths, "real"), (fake, fake_lengths, "generated")):
        if x is None:
            continue
        lengths = _lengths(x, lengths, what)[:n]
        sets.append((x.detach().float().cpu()[:n, :, :features], lengths))
        titles.append(what)
    vals = torch.cat([x[i, :lengths[i]].flatten() for x, lengths in sets for i in range(len(x))])
    lo, hi = min(vals.min().item(), -1.0), max(vals.max().item(), 1.0)
    img = Image.new("RGB", (len(sets) * (pw + 5) + 5 * (len(sets) == 2), n * (ph + 5) + 20), "white")
    draw = ImageDraw.Draw(img)
    for col, ((x, lengths), title) in enumerate(zip(sets, titles)):
        left = 5 + col * (pw + 5)
        draw.text((left + 2, 3), title, fill=(0, 0, 0))
        for row in range(len(x)):
            top = 20 + row * (ph + 5)
            draw.rectangle([left, top, left + pw - 1, top + ph - 1], outline=(170, 170, 170))
            zero = top + (ph - 1) * hi / (hi - lo)
            draw.line([left, zero, left + pw - 1, zero], fill=(225, 225, 225))
            steps = int(lengths[row])
            t_scale = (pw - 5) / max(x.shape[1] - 1, 1)
            for f in range(x.shape[2]):
                pts = [(left + 2 + t * t_scale, top + 2 + (ph - 5) * (hi - x[row, t, f].item()) / (hi - lo))
                       for t in range(steps)]
                if len(pts) > 1:
                    draw.line(pts, fill=COLOURS[f % len(COLOURS)], width=1)
    return img


def save_sequence_plot(path: str | Path, real: Tensor, fake: Tensor, **kwargs) -> None:
    """Save :func:`sequence_plot` as a PNG."""
    from ..atomic import atomic_path
    with atomic_path(path) as tmp:
        sequence_plot(real, fake, **kwargs).save(str(tmp))


__all__ = ["DISCRIMINATIVE", "PREDICTIVE", "discriminative_score", "predictive_score", "save_sequence_plot",
           "sequence_plot"]
