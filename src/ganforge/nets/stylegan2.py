"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN") in plain
PyTorch (no custom CUDA ops), scaled to small images.

G = mapping + synthesis.
  mapping: z -> normalised (second moment) [-> concatenated with a normalised class embedding when
    num_classes > 0] -> ``map_depth`` fully connected layers (LeakyReLU 0.2, learning rate x
    ``map_lr_mul``) -> w (B, w_dim). In training mode a running average of w (buffer ``w_avg``,
    decay ``w_avg_beta``) is tracked; it is the centre of the truncation trick
    w' = w_avg + psi (w - w_avg): psi=1 leaves w unchanged, psi=0 gives w_avg.
  synthesis: a learned constant (C, base, base), base 4 for 32, 64, ... px and 7 for 28 px (the
    size plan every family here uses, so 28 px images need no crop or resize), then per doubling:
    bilinear x2 upsample - modulated conv3x3, modulated conv3x3; every modulated conv is followed
    by noise (one plane per sample, a learned strength per channel), bias and LeakyReLU 0.2 (x
    sqrt 2). Modulation scales the input channels of the weights by a style (an affine map of w),
    demodulation rescales each output filter to unit norm (:func:`modulated_conv2d`: the input
    scaled by the style, one shared-weight conv, the output divided by the filter norms; the
    same as one grouped convolution of per-sample weights, which it also offers).
  architecture "skip" (paper config F): every resolution adds its toRGB (modulated 1x1 conv, not
    demodulated) to the bilinearly upsampled running image. "resnet": each block adds a 1x1 conv
    shortcut of its upsampled input, the sum scaled by 1/sqrt 2; one toRGB at the end.
  ws (B, num_ws, w_dim): one w per layer. Conv i reads ws[:, i]; a block's toRGB reads the w of the
    next block's first conv (as in the official code), so num_ws = 2 n + 2 for n doublings.
  style mixing: in training mode, with probability ``mixing_prob``, a second z (torch's global RNG)
    is mapped and its w replaces ws from a random layer on (one cutoff per batch).
  noise_mode: "random" draws fresh noise from torch's global RNG on every call; "const" uses fixed
    buffers drawn at construction (saved with the weights; deterministic sampling); "none" adds no
    noise. ``G(z, y, psi, noise_mode=...)`` overrides the constructor's choice for one call.
  output: tanh by default (the framework's images lie in [-1, 1]); ``tanh=False`` gives the paper's
    linear output.

D (residual, paper config E/F): fromRGB 1x1 -> per halving: conv3x3 - avgpool 2 - conv3x3 plus an
   avgpool - conv1x1 shortcut, the sum scaled by 1/sqrt 2 (pooling before the second conv instead
   of the paper's blur + stride-2 conv: 4x cheaper and simple); ``architecture="orig"`` drops the
   shortcuts (the plain D StyleGAN2-ADA trains CIFAR-10 with) -> minibatch std (Karras et al.
   2018, ``layers.MinibatchStdDev``) -> conv3x3 -> fc -> fc to one logit; with num_classes > 0 a
   projection (Miyato & Koyama 2018): logit + <embed[y], h> / sqrt(C) on the penultimate features.

Every layer uses the equalised learning rate (weights stored N(0, 1), scaled by 1/sqrt(fan_in) at
run time; the mapping layers also by ``map_lr_mul``), so ``model.init`` leaves this family as the
paper initialises it.

Channels at resolution r are min(channel_base // r, channel_max). The defaults are CPU-sized: for
28 px, G has 64 / 36 / 18 channels at 7 / 14 / 28 px and D the reverse; one G+D step at batch 32
costs about 3x a default DCGAN step on one core (roughly 0.1 s on a quiet core). The paper's
sizes, for GPUs: model.z_dim 512, G ``w_dim=512, map_depth=8, channel_base=32768,
channel_max=512``, D ``channel_base=32768, channel_max=512, mbstd=4``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import MinibatchStdDev, image_plan, label_rows, labels, layout_like, one_hot, square_size

ARCHITECTURES = ("skip", "resnet")
D_ARCHITECTURES = ("resnet", "orig")
NOISE_MODES = ("random", "const", "none")
SQRT2 = math.sqrt(2.0)


def _lrelu(x: Tensor) -> Tensor:
    """LeakyReLU 0.2 with the sqrt(2) gain that keeps unit variance (as in StyleGAN)."""
    return F.leaky_relu(x, 0.2) * SQRT2


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    """x / sqrt(mean(x^2)) over dim 1: each row gets unit mean square."""
    return x * (x.square().mean(1, keepdim=True) + eps).rsqrt()


def channels(res: int, base: int, cap: int) -> int:
    """Channels at resolution ``res``: min(base // res, cap), at least 1."""
    return max(1, min(base // res, cap))


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, *, demodulate: bool = True,
                     padding: int | None = None, eps: float = 1e-8, fused: bool = False,
                     gain: float = 1.0, bias: Tensor | None = None) -> Tensor:
    """StyleGAN2's weight (de)modulation.

    x (B, I, H, W), weight (O, I, k, k), styles (B, I). Sample b is convolved with
    w_b[o, i] = weight[o, i] * styles[b, i]; with ``demodulate`` each w_b[o] is then divided by
    d[b, o] = sqrt(sum_{i, kh, kw} w_b[o, i, kh, kw]^2 + eps), so unit-variance inputs give
    unit-variance outputs. Padding defaults to k // 2 (same size).

    ``fused``: build every sample's weights and run one grouped convolution. Otherwise (the
    default, as StyleGAN2-ADA trains) scale the input by the styles, convolve with the shared
    weight and divide the output by d: the same result, and 1.3-3x faster on a CPU at these sizes.

    ``gain`` and ``bias`` (O,): the output is gain * conv + bias, with the scaling folded into the
    per-sample factors and the bias added in the same pass (one elementwise pass over the output
    instead of three).
    """
    b, i, h, w = x.shape
    o, _, kh, kw = weight.shape
    if styles.shape != (b, i):
        raise ValueError(f"styles must have shape ({b}, {i}), got {tuple(styles.shape)}")
    pad = kh // 2 if padding is None else padding
    if not fused:
        if not demodulate:  # the gain goes on the (small) styles, the bias into the convolution
            return F.conv2d(x * (styles * gain)[:, :, None, None], weight, bias, padding=pad)  # (B, O, H', W')
        out = F.conv2d(x * styles[:, :, None, None], weight, padding=pad)  # (B, O, H', W')
        # d^2[b, o] = sum_i styles[b, i]^2 * sum_k weight[o, i, k]^2
        scale = (styles.square() @ weight.square().sum((2, 3)).t() + eps).rsqrt() * gain  # (B, O)
        if bias is None:
            return out * scale[:, :, None, None]
        return torch.addcmul(bias[:, None, None].to(out.dtype), out, scale[:, :, None, None].to(out.dtype))
    wb = weight.unsqueeze(0) * styles[:, None, :, None, None]  # (B, O, I, k, k)
    if demodulate:
        wb = wb * (wb.square().sum((2, 3, 4)) + eps).rsqrt()[:, :, None, None, None]
    out = F.conv2d(x.reshape(1, b * i, h, w), (wb * gain).reshape(b * o, i, kh, kw), padding=pad, groups=b)
    out = out.reshape(b, o, *out.shape[2:])  # (B, O, H', W')
    return out if bias is None else out + bias[:, None, None]


def mix_styles(rows: Tensor, cols: Tensor, layers) -> Tensor:
    """A style-mixing grid's ws: for row styles (R, L, w_dim) and column styles (C, L, w_dim),
    (R * C, L, w_dim) in row-major order where cell (r, c) takes the ws of row r except at the
    given layer indices, which come from column c (the paper's figure 3: coarse layers 0-3, middle
    4-7, fine 8+ of 18)."""
    if rows.dim() != 3 or cols.dim() != 3 or rows.shape[1:] != cols.shape[1:]:
        raise ValueError(f"row and column styles must be (N, num_ws, w_dim) alike, got {tuple(rows.shape)} "
                         f"and {tuple(cols.shape)}")
    idx = torch.as_tensor(list(layers), dtype=torch.long, device=rows.device)
    if idx.numel() and (idx.min() < 0 or idx.max() >= rows.shape[1]):
        raise ValueError(f"layer indices must be in 0..{rows.shape[1] - 1}, got {idx.tolist()}")
    out = rows[:, None].repeat(1, cols.shape[0], 1, 1)  # (R, C, L, w_dim)
    out[:, :, idx] = cols[None, :, idx].expand(rows.shape[0], -1, -1, -1)
    return out.flatten(0, 1)


class EqualLinear(nn.Module):
    """Fully connected layer with the equalised learning rate: y = x (W * lr_mul / sqrt(in))^T + b * lr_mul,
    W stored N(0, 1 / lr_mul^2). ``act``: LeakyReLU 0.2 x sqrt 2."""

    def __init__(self, in_features: int = 64, out_features: int = 64,
                 bias_init: float = 0.0,  # initial (effective) bias
                 lr_mul: float = 1.0,  # learning-rate multiplier (mapping network: 0.01)
                 act: bool = False):  # LeakyReLU after the layer
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.gain, self.lr_mul, self.act = lr_mul / math.sqrt(in_features), lr_mul, act

    def forward(self, x: Tensor) -> Tensor:
        # the gain on the (B, out) product rather than on W (D's fc: W has 64 x 3136 entries)
        out = torch.add(self.bias * self.lr_mul, F.linear(x, self.weight), alpha=self.gain)
        return _lrelu(out) if self.act else out


class EqualConv2d(nn.Module):
    """Conv k x k (same padding) with the equalised learning rate; ``act``: LeakyReLU 0.2 x sqrt 2."""

    def __init__(self, in_ch: int = 64, out_ch: int = 64, kernel: int = 3,
                 bias: bool = True,  # False for the residual shortcuts
                 act: bool = True,
                 scale: float = 1.0):  # output multiplier (the residual blocks' 1 / sqrt 2)
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.gain, self.act, self.scale = 1 / math.sqrt(in_ch * kernel * kernel), act, scale

    def forward(self, x: Tensor) -> Tensor:
        # scale * lrelu(conv + b) * sqrt 2 = lrelu(conv * c + b * c) for c = scale * sqrt 2 > 0: the gains go
        # on the weights, not on the activations
        c = self.scale * (SQRT2 if self.act else 1.0)
        out = F.conv2d(x, self.weight * (self.gain * c), None if self.bias is None else self.bias * c,
                       padding=self.weight.shape[-1] // 2)
        return F.leaky_relu(out, 0.2) if self.act else out


def _up(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class StyleConv(nn.Module):
    """[bilinear x2 upsample -] modulated conv - [noise - bias - LeakyReLU]; toRGB when ``rgb``
    (1x1, no demodulation, no noise, linear)."""

    def __init__(self, in_ch: int = 64, out_ch: int = 64, w_dim: int = 64,
                 res: int = 4,  # output resolution (size of the const noise buffer)
                 up: bool = False,  # upsample the input first
                 rgb: bool = False):  # toRGB layer
        super().__init__()
        k = 1 if rgb else 3
        self.up, self.rgb = up, rgb
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)  # w -> style (B, in_ch), starts near 1
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, k, k))
        self.gain = 1 / math.sqrt(in_ch * k * k)
        self.bias = nn.Parameter(torch.zeros(out_ch))
        if not rgb:
            self.noise_strength = nn.Parameter(torch.zeros(out_ch))  # per channel, starts at 0
            self.register_buffer("noise_const", torch.randn(1, 1, res, res))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random", noise: Tensor | None = None) -> Tensor:
        # x (B, in_ch, H, W), w (B, w_dim) -> (B, out_ch, H', W'), H' = 2H if up else H
        if self.up:
            x = _up(x)
        styles = self.affine(w) * self.gain  # (B, in_ch)
        if self.rgb:
            return modulated_conv2d(x, self.weight, styles, demodulate=False, bias=self.bias)
        # lrelu(conv + noise * strength + bias) * sqrt 2, with the sqrt 2 (lrelu is positively
        # homogeneous) on the small factors: three passes over the activations instead of six
        x = modulated_conv2d(x, self.weight, styles, gain=SQRT2, bias=self.bias * SQRT2)
        if noise is None and noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        elif noise is None and noise_mode == "const":
            noise = self.noise_const
        if noise is not None:
            x = torch.addcmul(x, noise.to(x.dtype), (self.noise_strength * SQRT2)[:, None, None].to(x.dtype))
        return F.leaky_relu(x, 0.2)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (conv0 up,) conv1 and, if it has one, toRGB."""

    def __init__(self, in_ch: int = 64, out_ch: int = 64, w_dim: int = 64, res: int = 4, img_ch: int = 3,
                 first: bool = False,  # the base resolution: one conv on the constant, no upsampling
                 architecture: str = "skip",
                 last: bool = False):
        super().__init__()
        self.first, self.resnet = first, architecture == "resnet"
        self.conv0 = None if first else StyleConv(in_ch, out_ch, w_dim, res, up=True)
        self.conv1 = StyleConv(out_ch if not first else in_ch, out_ch, w_dim, res)
        self.num_conv = 1 if first else 2
        self.torgb = StyleConv(out_ch, img_ch, w_dim, res, rgb=True) if architecture == "skip" or last else None
        self.num_torgb = int(self.torgb is not None)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False, act=False) if self.resnet and not first else None

    def forward(self, x: Tensor, img: Tensor | None, ws: Tensor, noise_mode: str, noise: list) -> tuple:
        # x (B, in_ch, H, W), img (B, img_ch, H, W) or None, ws (B, num_conv + num_torgb, w_dim)
        if self.first:
            x = self.conv1(x, ws[:, 0], noise_mode, noise[0])
        else:
            y = self.skip(_up(x)) if self.skip is not None else None
            x = self.conv0(x, ws[:, 0], noise_mode, noise[0])
            x = self.conv1(x, ws[:, 1], noise_mode, noise[1])
            if y is not None:
                x = (x + y) / SQRT2
        if img is not None:
            img = _up(img)
        if self.torgb is not None:
            rgb = self.torgb(x, ws[:, self.num_conv])
            img = rgb if img is None else img + rgb
        return x, img  # (B, out_ch, H', W'), (B, img_ch, H', W')


class StyleGAN2Generator(nn.Module):
    def __init__(self, z_dim: int = 128, out_shape: tuple = (3, 32, 32),
                 num_classes: int = 0,  # classes K; > 0: a class embedding enters the mapping network
                 w_dim: int = 128,  # size of w (paper: 512)
                 map_depth: int = 2,  # fully connected layers in the mapping network (paper: 8)
                 map_lr_mul: float = 0.01,  # learning-rate multiplier of the mapping network (paper: 0.01)
                 channel_base: int = 512,  # channels at res r: min(channel_base // r, channel_max) (paper: 32768)
                 channel_max: int = 64,  # (paper: 512)
                 architecture: str = "skip",  # skip (toRGB at every resolution, summed) | resnet
                 mixing_prob: float = 0.9,  # style-mixing probability per training batch (paper: 0.9)
                 w_avg_beta: float = 0.995,  # decay of the tracked average w (truncation centre)
                 noise_mode: str = "random",  # random | const | none (see the module docstring)
                 tanh: bool = True):  # squash the image to [-1, 1]; False: linear output as in the paper
        super().__init__()
        size = square_size(out_shape, "StyleGAN2")
        self.base, n = image_plan(size, "StyleGAN2")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture '{architecture}'; choose from {', '.join(ARCHITECTURES)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"unknown noise_mode '{noise_mode}'; choose from {', '.join(NOISE_MODES)}")
        if not 0 <= mixing_prob <= 1:
            raise ValueError(f"mixing_prob must be in [0, 1], got {mixing_prob}")
        if map_depth < 1:
            raise ValueError(f"map_depth must be >= 1, got {map_depth}")
        self.z_dim, self.out_shape, self.num_classes, self.w_dim = z_dim, tuple(out_shape), num_classes, w_dim
        self.mixing_prob, self.w_avg_beta, self.noise_mode, self.tanh = mixing_prob, w_avg_beta, noise_mode, tanh
        # mapping network
        self.embed = EqualLinear(num_classes, w_dim) if num_classes > 0 else None
        dims = [z_dim + (w_dim if num_classes > 0 else 0)] + [w_dim] * map_depth
        self.map = nn.Sequential(*(EqualLinear(a, b, lr_mul=map_lr_mul, act=True) for a, b in zip(dims, dims[1:])))
        self.register_buffer("w_avg", torch.zeros(w_dim))
        # synthesis network
        resolutions = [self.base * 2 ** i for i in range(n + 1)]
        ch = [channels(r, channel_base, channel_max) for r in resolutions]
        self.const = nn.Parameter(torch.randn(ch[0], self.base, self.base))
        self.blocks = nn.ModuleList(
            SynthesisBlock(ch[max(i - 1, 0)], ch[i], w_dim, r, out_shape[0], first=i == 0,
                           architecture=architecture, last=i == n)
            for i, r in enumerate(resolutions))
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1  # + the last toRGB

    # -- mapping ---------------------------------------------------------------------------------

    def mapping(self, z: Tensor, y: Tensor | None = None, psi: float = 1.0, *, update_w_avg: bool = True) -> Tensor:
        """Per-layer styles (B, num_ws, w_dim), all layers the same w, truncated towards w_avg by
        ``psi``. In training mode (and unless ``update_w_avg=False``) w_avg moves towards the batch
        mean of the untruncated w."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"StyleGAN2Generator: z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        y = labels(y, self.num_classes, z.shape[0], "StyleGAN2Generator")
        h = normalize_2nd_moment(z)  # (B, z_dim)
        if y is not None:
            e = normalize_2nd_moment(self.embed(one_hot(y, self.num_classes).to(z.dtype)))  # (B, w_dim)
            h = torch.cat([h, e], 1)
        w = self.map(h)  # (B, w_dim)
        if self.training and update_w_avg:
            with torch.no_grad():
                w_mean = w.detach().to(self.w_avg.dtype).mean(0)  # the average stays fp32 under bf16 autocast
                self.w_avg.copy_(w_mean.lerp(self.w_avg, self.w_avg_beta))
        if psi != 1:
            w = self.w_avg.to(w.dtype).lerp(w, psi)  # w_avg + psi (w - w_avg)
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)  # (B, num_ws, w_dim)

    def styles(self, z: Tensor, y: Tensor | None = None, psi: float = 1.0) -> Tensor:
        """The ws ``forward`` synthesises: ``mapping``, plus style mixing in training mode."""
        ws = self.mapping(z, y, psi)
        if self.training and self.mixing_prob > 0 and torch.rand(()).item() < self.mixing_prob:
            cutoff = int(torch.randint(1, self.num_ws, ()).item())
            ws2 = self.mapping(torch.randn_like(z), y, psi, update_w_avg=False)
            ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], 1)
        return ws

    # -- synthesis -------------------------------------------------------------------------------

    def noise_shapes(self) -> list[tuple]:
        """(1, 1, H, W) of each noise input, in the order ``synthesize(noise=...)`` takes them."""
        return [tuple(m.noise_const.shape) for m in self.modules() if isinstance(m, StyleConv) and not m.rgb]

    def synthesize(self, ws: Tensor, noise_mode: str | None = None, noise: list[Tensor] | None = None) -> Tensor:
        """Images (B, C, H, W) from per-layer styles ws (B, num_ws, w_dim). ``noise``: explicit
        noise planes, one per noise input (see ``noise_shapes``), overriding ``noise_mode``."""
        if ws.dim() != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"StyleGAN2Generator: ws must have shape (B, {self.num_ws}, {self.w_dim}), "
                             f"got {tuple(ws.shape)}")
        mode = self.noise_mode if noise_mode is None else noise_mode
        if mode not in NOISE_MODES:
            raise ValueError(f"unknown noise_mode '{mode}'; choose from {', '.join(NOISE_MODES)}")
        n_noise = len(self.noise_shapes())
        planes = list(noise) if noise is not None else [None] * n_noise
        if len(planes) != n_noise:
            raise ValueError(f"StyleGAN2Generator: noise needs {n_noise} planes (see noise_shapes), got {len(planes)}")
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)  # (B, C0, base, base)
        img, i, j = None, 0, 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, i:i + block.num_conv + block.num_torgb], mode,
                           planes[j:j + block.num_conv])
            i += block.num_conv
            j += block.num_conv
        return torch.tanh(img) if self.tanh else img  # (B, C, H, W)

    def forward(self, z: Tensor, y: Tensor | None = None, psi: float = 1.0, noise_mode: str | None = None) -> Tensor:
        return self.synthesize(self.styles(z, y, psi), noise_mode)  # (B, C, H, W)


class DBlock(nn.Module):
    """Down block: conv3x3 - avgpool - conv3x3; ``residual`` (paper config E/F) adds avgpool - conv1x1
    of the input and scales the sum by 1 / sqrt 2 ("orig" D: no shortcut)."""

    def __init__(self, in_ch: int = 64, out_ch: int = 64, residual: bool = True):
        super().__init__()
        scale = 1 / SQRT2 if residual else 1.0  # the sum's 1 / sqrt 2, on each branch
        self.conv0 = EqualConv2d(in_ch, in_ch, 3)
        self.conv1 = EqualConv2d(in_ch, out_ch, 3, scale=scale)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False, act=False, scale=scale) if residual else None

    def forward(self, x: Tensor) -> Tensor:
        # (B, in_ch, H, W) -> (B, out_ch, H/2, W/2)
        out = self.conv1(F.avg_pool2d(self.conv0(x), 2))
        return out if self.skip is None else out + self.skip(F.avg_pool2d(x, 2))


class StyleGAN2Discriminator(nn.Module):
    def __init__(self, in_shape: tuple = (3, 32, 32),
                 num_classes: int = 0,  # classes K; > 0: projection on a class embedding
                 channel_base: int = 512,  # channels at res r: min(channel_base // r, channel_max) (paper: 32768)
                 channel_max: int = 64,  # (paper: 512)
                 mbstd: int = 4,  # minibatch-stddev group size; 0 = off (paper: 4)
                 architecture: str = "resnet"):  # resnet (paper config E/F) | orig (no shortcuts: cheaper)
        super().__init__()
        if architecture not in D_ARCHITECTURES:
            raise ValueError(f"unknown architecture '{architecture}'; choose from {', '.join(D_ARCHITECTURES)}")
        size = square_size(in_shape, "StyleGAN2")
        base, n = image_plan(size, "StyleGAN2")
        self.in_shape, self.num_classes = tuple(in_shape), num_classes
        resolutions = [size // 2 ** i for i in range(n + 1)]  # size, ..., base
        ch = [channels(r, channel_base, channel_max) for r in resolutions]
        self.fromrgb = EqualConv2d(in_shape[0], ch[0], 1)
        self.blocks = nn.Sequential(*(DBlock(ch[i], ch[i + 1], architecture == "resnet")
                                      for i in range(n)))  # -> (B, ch[-1], base, base)
        self.mbstd = MinibatchStdDev(mbstd) if mbstd > 0 else None
        c = ch[-1]
        self.conv = EqualConv2d(c + int(mbstd > 0), c, 3)
        self.fc = EqualLinear(c * base * base, c, act=True)
        self.out = EqualLinear(c, 1)
        self.embed = nn.Parameter(torch.randn(num_classes, c)) if num_classes > 0 else None  # (K, C)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        y = labels(y, self.num_classes, x.shape[0], "StyleGAN2Discriminator")
        h = self.fromrgb(x)  # (B, C0, H, W); NCHW from a one-channel image whatever the weights' layout
        if len(self.blocks):
            h = layout_like(h, self.blocks[0].conv0.weight)
        h = self.blocks(h)  # (B, C, base, base)
        if self.mbstd is not None:
            h = self.mbstd(h)  # (B, C + 1, base, base)
        h = self.fc(self.conv(h).flatten(1))  # (B, C)
        logits = self.out(h).view(-1)  # (B,)
        if y is not None:
            logits = logits + (label_rows(self.embed, y) * h).sum(1) / math.sqrt(h.shape[1])
        return logits
