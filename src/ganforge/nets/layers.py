"""Blocks shared by the network families."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

NORMS = ("bn", "ln", "in", "none")


def norm2d(kind: str, channels: int) -> nn.Module:
    """A 2-D normalisation layer: batch, layer (over C, H, W), instance, or none."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "ln":
        return nn.GroupNorm(1, channels)
    if kind == "in":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}'; choose from {', '.join(NORMS)}")


def norm1d(kind: str, features: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm1d(features)
    if kind == "ln":
        return nn.LayerNorm(features)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}'; choose from bn, ln, none")


def maybe_sn(layer: nn.Module, enabled: bool) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) through PyTorch's parametrization."""
    return spectral_norm(layer) if enabled else layer


def activation(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind.startswith("lrelu"):
        slope = float(kind[len("lrelu"):] or 0.2)
        return nn.LeakyReLU(slope)
    if kind == "tanh":
        return nn.Tanh()
    if kind in ("none", "linear"):
        return nn.Identity()
    raise ValueError(f"unknown activation '{kind}'; use relu, lrelu[slope], tanh or none")


def image_plan(size: int, family: str) -> tuple[int, int]:
    """(base, number of x2 up/downsamplings) for an image size: size = base * 2^n, base 4 or 7,
    n >= 1 (28 = 7*4, 32 = 4*8, 64, ...)."""
    for base in (4, 7):
        n, s = 0, size
        while s > base and s % 2 == 0:
            s //= 2
            n += 1
        if s == base and n >= 1:
            return base, n
    raise ValueError(f"{family} supports image sizes 4*2^n or 7*2^n (28, 32, 64, ...), got {size}")


def image_plan_hw(h: int, w: int, family: str) -> tuple[tuple[int, int], int]:
    """((base_h, base_w), n) for an H x W image: the shorter side's plan (:func:`image_plan`), the
    longer side divided by the same 2^n (32x64 -> (4, 8), 3; 28x56 -> (7, 14), 2; 64x64 -> (4, 4), 4)."""
    if h == w:
        base, n = image_plan(h, family)
        return (base, base), n
    try:
        base, n = image_plan(min(h, w), family)
    except ValueError:
        n = 0
    if not n or max(h, w) % 2 ** n:
        raise ValueError(f"{family} supports HxW sizes whose longer side is a multiple of the shorter side's "
                         f"2^n (shorter side 4*2^n or 7*2^n, e.g. 32x64, 28x56, 64x96), got {h}x{w}")
    return (h >> n, w >> n), n


def square_size(shape: tuple, family: str) -> int:
    """The side of a (C, H, W) shape with H == W."""
    if len(shape) != 3:
        raise ValueError(f"{family} needs (C, H, W) images, got shape {tuple(shape)}")
    if shape[1] != shape[2]:
        raise ValueError(f"{family} needs square images, got {shape[1]}x{shape[2]}")
    return int(shape[1])


# -- class labels ---------------------------------------------------------------------------------

D_CONDS = ("concat", "projection", "acgan")


def check_d_options(cond: str, num_classes: int, pack: int) -> None:
    """Validate a discriminator's label-conditioning mode and packing (constructor time)."""
    if cond not in D_CONDS:
        raise ValueError(f"unknown cond '{cond}'; choose from {', '.join(D_CONDS)}")
    if int(pack) < 1:
        raise ValueError(f"pack must be >= 1, got {pack}")
    if pack > 1 and num_classes > 0:
        raise ValueError("pack > 1 with class labels (num_classes > 0) is not supported")


def labels(y: Tensor | None, num_classes: int, batch: int, who: str) -> Tensor | None:
    """The labels a net uses: None when it is unconditional (``y`` is ignored), else ``y`` checked
    to be a (B,) tensor and returned as int64."""
    if num_classes == 0:
        return None
    if y is None:
        raise ValueError(f"{who} was built with num_classes={num_classes}: "
                         f"pass class labels y of shape (B,), got None")
    if y.is_floating_point() and y.shape == (batch, num_classes):
        return y  # soft labels (rows of class weights), e.g. to interpolate between classes
    if y.shape != (batch,):
        raise ValueError(f"{who}: labels y must have shape ({batch},), got {tuple(y.shape)}")
    if y.is_floating_point():
        raise ValueError(f"{who}: labels y must be integer class indices, got {y.dtype}")
    return y.long()


def label_rows(table: Tensor, y: Tensor) -> Tensor:
    """Rows of a (K, F) per-class table for labels y: ``table[y]`` for class indices, the
    weighted mix ``y @ table`` for soft labels (B, K)."""
    return y.to(table.dtype) @ table if y.is_floating_point() else table[y]


def one_hot(y: Tensor, num_classes: int) -> Tensor:
    """One-hot rows (B, K) for class indices; soft labels pass through."""
    return y if y.is_floating_point() else F.one_hot(y, num_classes)


def concat_labels(x: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """Append the one-hot label (Mirza & Osindero 2014): vectors (B, F) -> (B, F + K);
    images (B, C, H, W) -> (B, C + K, H, W) with K constant planes."""
    onehot = one_hot(y, num_classes).to(x.dtype)  # (B, K)
    if x.dim() == 2:
        return torch.cat([x, onehot], 1)
    planes = onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])  # (B, K, H, W)
    return torch.cat([x, planes], 1)


def conv_label_planes(conv: nn.Conv2d, x: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """``conv(concat_labels(x, y, K))`` without building the K label planes.

    ``conv`` takes C + K input channels (the image's, then one per class). A constant plane's
    convolution is the same map for every sample (zero padding makes it vary only at the borders),
    so the label channels add one (out, H', W') map per class, picked by the label (or mixed by soft
    labels). The result is the concatenation's up to float rounding, and the convolution over the
    batch runs on C input channels instead of C + K (for Fashion-MNIST's cgan D, 1 instead of 11).
    ``conv.weight`` is read once, so a spectral-norm parametrization steps its power iteration once.
    """
    w = conv.weight  # (out, C + K, kh, kw)
    if conv.groups != 1 or conv.padding_mode != "zeros" or w.shape[1] != x.shape[1] + num_classes:
        return conv(concat_labels(x, y, num_classes))
    c, out_ch = x.shape[1], w.shape[0]
    h = F.conv2d(x, w[:, :c], conv.bias, conv.stride, conv.padding, conv.dilation)  # (B, out, H', W')
    w_lab = w[:, c:].transpose(0, 1).reshape(num_classes * out_ch, 1, *w.shape[2:])  # (K * out, 1, kh, kw)
    maps = F.conv2d(x.new_ones(1, 1, *x.shape[2:]), w_lab, None, conv.stride, conv.padding, conv.dilation)
    maps = maps.view(num_classes, -1)  # (K, out * H' * W'): class k's contribution
    return h + label_rows(maps, y).view(h.shape)


class LabelHead(nn.Module):
    """A discriminator's label-dependent output, from the pooled penultimate features h:

    - ``projection`` (Miyato & Koyama 2018): logits + <embed(y), h>;
    - ``acgan`` (Odena et al. 2017): (logits, class_logits) from an extra linear class head;
    - ``concat`` or num_classes=0: the logits unchanged (labels enter at D's input).
    """

    def __init__(self, cond: str = "concat",  # concat | projection | acgan
                 num_classes: int = 0,  # 0: unconditional, no parameters
                 features: int = 1,  # size of h
                 sn: bool = False):  # spectral norm on the embedding / class head
        super().__init__()
        self.cond = cond if num_classes > 0 else "none"
        if self.cond == "projection":
            self.embed = maybe_sn(nn.Embedding(num_classes, features), sn)
        elif self.cond == "acgan":
            self.classify = maybe_sn(nn.Linear(features, num_classes), sn)

    def forward(self, logits: Tensor, h: Tensor, y: Tensor | None):
        # logits (B,), h (B, features), y (B,) or None
        if self.cond == "projection":
            return logits + (self.embed(y) * h).sum(1)  # (B,)
        if self.cond == "acgan":
            return logits, self.classify(h)  # (B,), (B, K)
        return logits


# -- PacGAN, minibatch standard deviation ---------------------------------------------------------

def pack_samples(x: Tensor, pack: int) -> Tensor:
    """PacGAN (Lin et al. 2018): put ``pack`` consecutive samples side by side along channels,
    (B, C, ...) -> (B / pack, pack * C, ...); D then judges each pack as one input."""
    if pack == 1:
        return x
    if x.shape[0] % pack != 0:
        raise ValueError(f"pack={pack} needs a batch size divisible by {pack}, got {x.shape[0]}")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


def layout_like(x: Tensor, ref: Tensor) -> Tensor:
    """``x`` in channels-last layout when ``ref`` is (the run's NHWC mode), else ``x`` as it is.

    A convolution whose input has one channel (a grey image) cannot tell NHWC from NCHW and returns
    NCHW, as do concatenations with an expanded plane; every later op then mixes layouts (a
    conversion copy before each conv, slow mixed-layout sums in the backward pass)."""
    if x.dim() == 4 and ref.dim() == 4 and ref.is_contiguous(memory_format=torch.channels_last) \
            and not ref.is_contiguous():
        return x.contiguous(memory_format=torch.channels_last)
    return x


class MinibatchStdDev(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018): (B, C, H, W) -> (B, C + 1, H, W).

    The batch is split into groups of ``group_size`` samples (sample i in group i mod B/G, as in
    ProGAN / StyleGAN); the appended plane holds, for each group, the standard deviation over the
    group of each feature, averaged over features and positions. When B is not a multiple of
    group_size the group is the largest divisor of B below it (a single sample gets zeros).
    """

    def __init__(self, group_size: int = 4):  # samples per group
        super().__init__()
        if group_size < 1:
            raise ValueError(f"mbstd group size must be >= 1, got {group_size}")
        self.group_size = int(group_size)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        g = min(self.group_size, b)
        while b % g:
            g -= 1
        y = x.reshape(g, b // g, c, h, w)  # (G, M, C, H, W)
        y = y - y.mean(0)
        std = (y.pow(2).mean(0) + 1e-8).sqrt()  # (M, C, H, W), biased over the group
        s = std.mean((1, 2, 3))  # (M,)
        s = s.repeat(g).view(b, 1, 1, 1).expand(b, 1, h, w)  # (B, 1, H, W); sample i -> s[i % M]
        return layout_like(torch.cat([x, s], 1), x)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


# -- conditional batch norm -----------------------------------------------------------------------

class ConditionalBatchNorm2d(nn.Module):
    """Class-conditional batch norm (de Vries et al. 2017; SNGAN's G): BN without its own affine,
    then a per-class gain (init 1) and bias (init 0). With num_classes=0 it is a plain BatchNorm2d
    and the labels are ignored.

    The gain and bias tables are plain parameters, not ``nn.Embedding`` layers, so that the
    family-wide weight initialisations (which redraw embeddings) leave them at 1 and 0.
    """

    def __init__(self, num_features: int = 64,  # channels C
                 num_classes: int = 0):  # classes K; 0: unconditional BatchNorm2d
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(num_features, affine=num_classes == 0)
        if num_classes > 0:
            self.gain = nn.Parameter(torch.ones(num_classes, num_features))  # (K, C)
            self.bias = nn.Parameter(torch.zeros(num_classes, num_features))  # (K, C)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        out = self.bn(x)  # (B, C, H, W)
        if self.num_classes == 0:
            return out
        return out * label_rows(self.gain, y)[:, :, None, None] + label_rows(self.bias, y)[:, :, None, None]


class LinearConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias are linear functions of a conditioning vector c (BigGAN's G:
    c = [z chunk, shared class embedding]): BN(x) * (1 + W_g c) + W_b c, per channel."""

    def __init__(self, num_features: int = 64,  # channels C
                 cond_dim: int = 32,  # size of c
                 sn: bool = True):  # spectral norm on W_g, W_b (BigGAN)
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = maybe_sn(nn.Linear(cond_dim, num_features, bias=False), sn)
        self.bias = maybe_sn(nn.Linear(cond_dim, num_features, bias=False), sn)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        # x (B, C, H, W), c (B, cond_dim)
        gain = 1 + self.gain(c)[:, :, None, None]  # (B, C, 1, 1)
        return self.bn(x) * gain + self.bias(c)[:, :, None, None]


# -- residual blocks (SNGAN, BigGAN) ---------------------------------------------------------------

def _up(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class UpResBlock(nn.Module):
    """Generator residual block (Miyato et al. 2018; Brock et al. 2019), doubling H and W:

    residual: norm - ReLU - upsample - conv3x3 - norm - ReLU - conv3x3
    shortcut: upsample - conv1x1 (computed as conv1x1 - upsample: the two commute, and it is cheaper)

    ``norm(channels)`` makes the (conditional) norms; they are called as ``norm(x, c)`` with the
    block's conditioning ``c`` (class labels, a vector, or None).
    """

    def __init__(self, in_ch: int = 64,  # input channels
                 out_ch: int = 64,  # output channels
                 norm=ConditionalBatchNorm2d,  # callable channels -> module taking (x, c)
                 sn: bool = False):  # spectral norm on the convs
        super().__init__()
        self.norm1 = norm(in_ch)
        self.conv1 = maybe_sn(nn.Conv2d(in_ch, out_ch, 3, 1, 1), sn)
        self.norm2 = norm(out_ch)
        self.conv2 = maybe_sn(nn.Conv2d(out_ch, out_ch, 3, 1, 1), sn)
        self.shortcut = maybe_sn(nn.Conv2d(in_ch, out_ch, 1, 1, 0), sn)

    def forward(self, x: Tensor, c=None) -> Tensor:
        # (B, in_ch, H, W) -> (B, out_ch, 2H, 2W)
        h = self.conv1(_up(F.relu(self.norm1(x, c))))
        h = self.conv2(F.relu(self.norm2(h, c)))
        return h + _up(self.shortcut(x))


class DownResBlock(nn.Module):
    """Discriminator residual block (Miyato et al. 2018; Brock et al. 2019):

    residual: [ReLU] - conv3x3 - ReLU - conv3x3 - [avgpool 2]
    shortcut: conv1x1 - [avgpool 2] when the channels change or it downsamples, else identity

    ``preact=False`` is SNGAN's "optimized" first block (no ReLU on the input image). The 1x1 conv
    and the average pooling commute; the shortcut pools first because it is cheaper.
    """

    def __init__(self, in_ch: int = 64,  # input channels
                 out_ch: int = 64,  # output channels
                 down: bool = True,  # halve H and W
                 preact: bool = True,  # ReLU before the first conv (False for the first block)
                 sn: bool = True):  # spectral norm on the convs
        super().__init__()
        self.down, self.preact = down, preact
        self.conv1 = maybe_sn(nn.Conv2d(in_ch, out_ch, 3, 1, 1), sn)
        self.conv2 = maybe_sn(nn.Conv2d(out_ch, out_ch, 3, 1, 1), sn)
        self.shortcut = maybe_sn(nn.Conv2d(in_ch, out_ch, 1, 1, 0), sn) if in_ch != out_ch or down else None

    def forward(self, x: Tensor) -> Tensor:
        # (B, in_ch, H, W) -> (B, out_ch, H/2, W/2) if down else (B, out_ch, H, W)
        h = F.relu(x) if self.preact else x
        h = self.conv2(F.relu(self.conv1(h)))
        s = x
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        if self.shortcut is not None:
            s = self.shortcut(s)  # NCHW from a one-channel image: in h's layout for the sum
        return h + layout_like(s, h)


class SelfAttention2d(nn.Module):
    """Self-attention over positions (SAGAN, Zhang et al. 2019), as used in BigGAN:

    q, k, v = 1x1 convs to C / reduction channels; beta = softmax over positions i of q_j . k_i;
    o = conv1x1(sum_i beta_ji v_i) back to C channels; out = x + gamma * o, gamma initialised 0,
    so the block starts as the identity.
    """

    def __init__(self, channels: int = 64,  # C
                 reduction: int = 8,  # query / key / value channels are C // reduction (at least 1)
                 sn: bool = True):  # spectral norm on the four 1x1 convs
        super().__init__()
        inner = max(channels // reduction, 1)
        self.query = maybe_sn(nn.Conv2d(channels, inner, 1, bias=False), sn)
        self.key = maybe_sn(nn.Conv2d(channels, inner, 1, bias=False), sn)
        self.value = maybe_sn(nn.Conv2d(channels, inner, 1, bias=False), sn)
        self.out = maybe_sn(nn.Conv2d(inner, channels, 1, bias=False), sn)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, c=None) -> Tensor:
        b, ch, h, w = x.shape  # (B, C, H, W)
        q = self.query(x).flatten(2)  # (B, C', N)
        k = self.key(x).flatten(2)  # (B, C', N)
        v = self.value(x).flatten(2)  # (B, C', N)
        beta = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # (B, N_query, N_key), rows sum to 1
        o = (v @ beta.transpose(1, 2)).view(b, -1, h, w)  # (B, C', H, W)
        return x + self.gamma * self.out(o)


# -- regularisation -------------------------------------------------------------------------------

def orthogonal_penalty(module: nn.Module, *, exclude_1d: bool = True,
                       exclude: Iterable[Tensor] = ()) -> Tensor:
    """BigGAN's modified orthogonal regularisation (Brock et al. 2019, eq. 3 without beta):
    sum over weights W, reshaped to (out, -1), of ||W W^T * (1 - I)||_F^2.

    Every parameter counts, spectral-normalised layers through their original (unnormalised)
    weight, which is what ``module.parameters()`` holds. ``exclude_1d`` skips biases, gains and
    other tensors of fewer than 2 dimensions; ``exclude`` skips given tensors (BigGAN leaves its
    shared class embedding out). Differentiable; 0 for a module without such weights.
    """
    skip = {id(p) for p in exclude}
    total = None
    for p in module.parameters():
        if id(p) in skip or (exclude_1d and p.dim() < 2):
            continue
        w = p.reshape(p.shape[0], -1) if p.dim() > 0 else p.reshape(1, 1)  # (out, in)
        gram = w @ w.T  # (out, out)
        off = gram - torch.diag_embed(torch.diagonal(gram))  # zero the diagonal
        term = off.pow(2).sum()
        total = term if total is None else total + term
    if total is None:
        p = next(module.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else "cpu")
    return total
