"""Sequence G and D for multivariate time series (B, T, F), in three bodies chosen by ``arch``:

- ``rnn``: a stacked LSTM or GRU (``cell``), as in C-RNN-GAN (Mogren 2016) and TimeGAN's nets;
- ``conv``: residual 1-D convolutions over time (kernel ``kernel``) on top of a learned
  per-step position embedding;
- ``transformer``: a Transformer encoder (self-attention over steps, no causal mask) on top of
  the same position embedding.

**Latent.** ``G(z, lengths)`` takes either z (B, z_dim), a global latent repeated at every step
(what the trainer's ``sample_latent`` and the interpolation tools make), or z (B, T, z_dim), one
noise vector per step as in TimeGAN. Both go through the same first layer.

**Variable lengths.** The second argument of both nets is ``lengths`` (B,) int64 or None (all
sequences have the full T). D ignores the steps t >= length: the RNN reads a packed sequence, the
convolutions zero the padded steps before every layer, the Transformer masks them as keys, and
the per-step features are averaged over the valid steps only. G zeroes its outputs beyond each
length; its valid outputs never depend on the noise at padded steps. The fake sequences of a
batch should get the lengths of the real batch (or lengths drawn from the data).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .layers import activation

ARCHS = ("rnn", "conv", "transformer")
CELLS = ("gru", "lstm")
OUT_ACTS = ("tanh", "sigmoid", "none")


def _check_shape(name: str, shape) -> tuple[int, int]:
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"{name} must be (T, F) sequences (steps, features), got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def _check_options(arch: str, cell: str, hidden: int, layers: int, heads: int) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown sequence arch '{arch}'; choose from {', '.join(ARCHS)}")
    if cell not in CELLS:
        raise ValueError(f"unknown cell '{cell}'; choose from {', '.join(CELLS)}")
    if hidden < 1 or layers < 1:
        raise ValueError(f"hidden and layers must be >= 1, got {hidden}, {layers}")
    if arch == "transformer" and hidden % heads:
        raise ValueError(f"transformer hidden={hidden} must be divisible by heads={heads}")


def valid_mask(lengths: Tensor | None, batch: int, steps: int, device) -> Tensor:
    """(B, T) bool: True at the steps t < lengths[b]; all True for lengths None. Checks lengths."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    if lengths.shape != (batch,) or lengths.is_floating_point():
        raise ValueError(f"lengths must be an integer tensor of shape ({batch},), got "
                         f"{lengths.dtype} {tuple(lengths.shape)}")
    if lengths.numel() and (lengths.min() < 1 or lengths.max() > steps):
        raise ValueError(f"lengths must be in [1, {steps}], got {int(lengths.min())}..{int(lengths.max())}")
    return torch.arange(steps, device=device)[None, :] < lengths.to(device)[:, None]


class SequenceBody(nn.Module):
    """(B, T, in_dim) -> per-step features (B, T, out_dim), ignoring steps where ``mask`` is False."""

    def __init__(self, in_dim: int = 8,  # input size per step
                 steps: int = 24,  # T (for the position embedding)
                 arch: str = "rnn",  # rnn | conv | transformer
                 cell: str = "gru",  # rnn only: gru | lstm
                 hidden: int = 64,  # hidden size (RNN state, conv channels, model width)
                 layers: int = 2,  # stacked RNN layers / residual conv blocks / encoder layers
                 kernel: int = 5,  # conv only: odd kernel size over time
                 heads: int = 4,  # transformer only: attention heads (hidden % heads == 0)
                 bidirectional: bool = False):  # rnn only: read both directions (D; G stays causal)
        super().__init__()
        _check_options(arch, cell, hidden, layers, heads)
        self.arch, self.cell = arch, cell
        self.out_dim = hidden * (2 if bidirectional and arch == "rnn" else 1)
        if arch == "rnn":
            rnn = nn.GRU if cell == "gru" else nn.LSTM
            self.rnn = rnn(in_dim, hidden, layers, batch_first=True, bidirectional=bidirectional)
            return
        self.inp = nn.Linear(in_dim, hidden)
        self.pos = nn.Parameter(torch.randn(steps, hidden) * 0.02)  # (T, hidden) learned positions
        if arch == "conv":
            if kernel % 2 == 0:
                raise ValueError(f"conv kernel must be odd (same-length output), got {kernel}")
            self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2)
                                       for _ in range(2 * layers))
        else:
            layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=0.0,
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        # x (B, T, in_dim), mask (B, T) bool -> (B, T, out_dim), zero where mask is False
        m = mask[:, :, None].to(x.dtype)  # (B, T, 1)
        if self.arch == "rnn":
            lengths = mask.sum(1).cpu()
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            h, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            return h  # padded steps are zero
        h = self.inp(x * m) + self.pos[:x.shape[1]]  # (B, T, hidden)
        if self.arch == "conv":
            for i in range(0, len(self.convs), 2):  # residual blocks: conv - lrelu - conv
                r = F.leaky_relu(self.convs[i]((h * m).transpose(1, 2)), 0.2)  # (B, hidden, T)
                r = self.convs[i + 1](r * m.transpose(1, 2)).transpose(1, 2)  # (B, T, hidden)
                h = F.leaky_relu(h + r, 0.2)
            return h * m
        h = self.encoder(h * m, src_key_padding_mask=~mask)
        return h * m


class SequenceGenerator(nn.Module):
    """z (B, z_dim) or (B, T, z_dim), lengths (B,) | None -> sequences (B, T, F)."""

    def __init__(self, z_dim: int = 16,  # latent size (per step when z is (B, T, z_dim))
                 out_shape: tuple = (24, 5),  # (T, F) of the sequences made
                 arch: str = "rnn",  # rnn | conv | transformer
                 cell: str = "gru",  # rnn only: gru | lstm
                 hidden: int = 64,  # hidden size
                 layers: int = 2,  # depth of the body
                 kernel: int = 5,  # conv only: kernel size over time (odd)
                 heads: int = 4,  # transformer only: attention heads
                 out_act: str = "tanh"):  # tanh (data in [-1, 1]) | sigmoid ([0, 1]) | none
        super().__init__()
        self.z_dim, self.out_shape = int(z_dim), tuple(out_shape)
        self.steps, self.features = _check_shape("out_shape", out_shape)
        if out_act not in OUT_ACTS:
            raise ValueError(f"unknown out_act '{out_act}'; choose from {', '.join(OUT_ACTS)}")
        self.body = SequenceBody(self.z_dim, self.steps, arch, cell, hidden, layers, kernel, heads)
        self.out = nn.Linear(self.body.out_dim, self.features)
        self.act = nn.Sigmoid() if out_act == "sigmoid" else activation(out_act)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if z.dim() == 2:
            z = z[:, None, :].expand(-1, self.steps, -1)  # (B, T, z_dim): the same latent at every step
        if z.dim() != 3 or z.shape[1:] != (self.steps, self.z_dim):
            raise ValueError(f"z must be (B, {self.z_dim}) or (B, {self.steps}, {self.z_dim}), got {tuple(z.shape)}")
        mask = valid_mask(y, z.shape[0], self.steps, z.device)  # (B, T)
        x = self.act(self.out(self.body(z, mask)))  # (B, T, F)
        return x * mask[:, :, None].to(x.dtype)


class SequenceDiscriminator(nn.Module):
    """x (B, T, F), lengths (B,) | None -> logits (B,): per-step features averaged over the valid
    steps, then a linear layer."""

    def __init__(self, in_shape: tuple = (24, 5),  # (T, F) of the sequences judged
                 arch: str = "rnn",  # rnn | conv | transformer
                 cell: str = "gru",  # rnn only: gru | lstm
                 hidden: int = 64,  # hidden size
                 layers: int = 2,  # depth of the body
                 kernel: int = 5,  # conv only: kernel size over time (odd)
                 heads: int = 4,  # transformer only: attention heads
                 bidirectional: bool = True):  # rnn only: read the sequence both ways (TimeGAN's D)
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.steps, self.features = _check_shape("in_shape", in_shape)
        self.body = SequenceBody(self.features, self.steps, arch, cell, hidden, layers, kernel, heads, bidirectional)
        self.out = nn.Linear(self.body.out_dim, 1)

    def features_of(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The pooled features (B, hidden) that the logit is a linear function of."""
        if x.dim() != 3 or x.shape[1:] != (self.steps, self.features):
            raise ValueError(f"x must be (B, {self.steps}, {self.features}), got {tuple(x.shape)}")
        mask = valid_mask(y, x.shape[0], self.steps, x.device)  # (B, T)
        h = self.body(x, mask)  # (B, T, hidden), zero at padded steps
        return h.sum(1) / mask.sum(1, keepdim=True).to(h.dtype)  # (B, hidden)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.out(self.features_of(x, y)).squeeze(1)  # (B,)


__all__ = ["ARCHS", "CELLS", "SequenceBody", "SequenceDiscriminator", "SequenceGenerator", "valid_mask"]
