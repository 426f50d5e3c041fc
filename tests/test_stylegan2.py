"""The StyleGAN2 family: weight (de)modulation against a per-sample loop, unit output variance,
truncation, the tracked average w, style mixing, noise modes, ws layout, and the shared family
checks of test_nets.py, unconditional and (through a label-supplying wrapper) conditional.
Every net is tiny (at most 8 channels, w_dim 8)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.config import ModelConfig
from ganforge.nets import NETS, build_nets
from ganforge.nets.stylegan2 import (DBlock, StyleConv, StyleGAN2Discriminator, StyleGAN2Generator, mix_styles,
                                    modulated_conv2d)
from test_nets import NetFamilyChecks, pytest_generate_tests  # noqa: F401  (the hook parametrises the checks)

pytestmark = pytest.mark.usefixtures("one_thread")

Z_DIM = 8
K = 3
TINY_G = {"w_dim": 8, "map_depth": 1, "channel_base": 128, "channel_max": 8, "noise_mode": "const"}
TINY_D = {"channel_base": 128, "channel_max": 8}


def _g(shape=(1, 28, 28), num_classes: int = 0, seed: int = 0, **kw) -> StyleGAN2Generator:
    torch.manual_seed(seed)
    return StyleGAN2Generator(z_dim=Z_DIM, out_shape=shape, num_classes=num_classes, **{**TINY_G, **kw})


# -- modulated convolution --------------------------------------------------------------------------

def _loop_reference(x, weight, styles, demodulate, eps=1e-8):
    """One ordinary convolution per sample with its own modulated (and demodulated) weights."""
    outs = []
    for b in range(x.shape[0]):
        w = weight * styles[b].view(1, -1, 1, 1)  # (O, I, k, k)
        if demodulate:
            w = w / (w.square().sum((1, 2, 3), keepdim=True) + eps).sqrt()
        outs.append(F.conv2d(x[b:b + 1], w, padding=weight.shape[-1] // 2))
    return torch.cat(outs)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_matches_per_sample_loop(demodulate, kernel, fused):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 6, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 4, kernel, kernel, generator=g, dtype=torch.float64)
    styles = torch.rand(3, 4, generator=g, dtype=torch.float64) * 3 + 0.1
    out = modulated_conv2d(x, weight, styles, demodulate=demodulate, fused=fused)
    assert out.shape == (3, 5, 6, 6)
    torch.testing.assert_close(out, _loop_reference(x, weight, styles, demodulate), rtol=1e-10, atol=1e-10)
    # per-sample styles matter: the same weights with sample 0's styles everywhere give another result
    same = modulated_conv2d(x, weight, styles[:1].expand(3, -1), demodulate=demodulate, fused=fused)
    assert not torch.allclose(out[1:], same[1:])


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_gain_and_bias_are_applied_after_the_convolution(demodulate, fused):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 4, 6, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64)
    styles = torch.rand(3, 4, generator=g, dtype=torch.float64) * 3 + 0.1
    bias = torch.randn(5, generator=g, dtype=torch.float64)
    out = modulated_conv2d(x, weight, styles, demodulate=demodulate, fused=fused, gain=1.7, bias=bias)
    expected = 1.7 * _loop_reference(x, weight, styles, demodulate) + bias[:, None, None]
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_style_conv_is_lrelu_of_conv_noise_and_bias_times_sqrt2():
    """The layer folds its sqrt 2 gain into the small factors; the result is the paper's formula
    lrelu(modconv(x) + strength * noise + bias) * sqrt 2, written out here step by step."""
    torch.manual_seed(3)
    for rgb in (False, True):
        layer = StyleConv(4, 5, w_dim=6, res=6, rgb=rgb).double()
        with torch.no_grad():
            layer.bias.normal_()
            if not rgb:
                layer.noise_strength.normal_()
        x, w = torch.randn(3, 4, 6, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
        noise = torch.randn(3, 1, 6, 6, dtype=torch.float64)
        styles = layer.affine(w) * layer.gain
        conv = _loop_reference(x, layer.weight, styles, demodulate=not rgb)
        if rgb:
            expected = conv + layer.bias[:, None, None]
        else:
            pre = conv + noise * layer.noise_strength[:, None, None] + layer.bias[:, None, None]
            expected = F.leaky_relu(pre, 0.2) * 2 ** 0.5
        torch.testing.assert_close(layer(x, w, noise=noise), expected, rtol=1e-10, atol=1e-10)


def test_discriminator_block_is_the_scaled_residual_sum():
    """(conv1(pool(conv0(x))) + skip(pool(x))) / sqrt 2 with each conv lrelu(conv + b) * sqrt 2,
    written out with plain convolutions, against the block (which folds the gains into the weights)."""
    torch.manual_seed(4)
    block = DBlock(4, 6).double()
    with torch.no_grad():
        block.conv0.bias.normal_()
        block.conv1.bias.normal_()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)

    def conv(m, h, act):
        out = F.conv2d(h, m.weight / (m.weight[0].numel() ** 0.5), m.bias, padding=m.weight.shape[-1] // 2)
        return F.leaky_relu(out, 0.2) * 2 ** 0.5 if act else out

    main = conv(block.conv1, F.avg_pool2d(conv(block.conv0, x, True), 2), True)
    expected = (main + conv(block.skip, F.avg_pool2d(x, 2), False)) / 2 ** 0.5
    torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-10)


def test_orig_discriminator_has_no_shortcuts_and_plain_blocks():
    torch.manual_seed(5)
    D = StyleGAN2Discriminator((1, 28, 28), **TINY_D, architecture="orig")
    assert all(b.skip is None for b in D.blocks) and D(torch.randn(3, 1, 28, 28)).shape == (3,)
    block = DBlock(4, 6, residual=False).double()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)

    def conv(m, h):
        out = F.conv2d(h, m.weight / (m.weight[0].numel() ** 0.5), m.bias, padding=m.weight.shape[-1] // 2)
        return F.leaky_relu(out, 0.2) * 2 ** 0.5

    torch.testing.assert_close(block(x), conv(block.conv1, F.avg_pool2d(conv(block.conv0, x), 2)))
    with pytest.raises(ValueError, match="unknown architecture"):
        StyleGAN2Discriminator((1, 28, 28), **TINY_D, architecture="skip")


def test_modulated_conv_refuses_wrong_style_shape():
    with pytest.raises(ValueError, match=r"styles must have shape \(2, 4\)"):
        modulated_conv2d(torch.zeros(2, 4, 5, 5), torch.zeros(3, 4, 3, 3), torch.zeros(2, 3))


def test_demodulation_gives_unit_variance_outputs():
    """For i.i.d. unit-variance inputs an output is sum_i w'_i x_i with sum_i w'_i^2 = 1 after
    demodulation: variance 1 for every sample and filter, whatever the weights and styles."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 16, 34, 34, generator=g, dtype=torch.float64)
    weight = torch.randn(6, 16, 3, 3, generator=g, dtype=torch.float64) * 0.1
    styles = torch.rand(8, 16, generator=g, dtype=torch.float64) * 5  # far from unit scale
    out = modulated_conv2d(x, weight, styles, padding=0)  # (8, 6, 32, 32): no zero padding at the borders
    var = out.var((2, 3))  # (B, O), 1024 positions each
    # the variance of a sample variance of 1024 (correlated, overlapping-window) values: allow 20 %
    assert (var - 1).abs().max() < 0.2, var
    assert abs(var.mean().item() - 1) < 0.03  # 48 estimates pooled
    plain = modulated_conv2d(x, weight, styles, padding=0, demodulate=False).var((2, 3))
    assert (plain - 1).abs().min() > 0.5, "without demodulation the variance is already 1: vacuous"


# -- mapping, truncation, average w ---------------------------------------------------------------------

def test_truncation_psi_one_keeps_w_and_psi_zero_gives_w_avg():
    G = _g().eval()
    with torch.no_grad():
        G.w_avg.copy_(torch.randn(G.w_dim))  # as if trained
        z = torch.randn(4, Z_DIM)
        w = G.mapping(z)
        assert w.shape == (4, G.num_ws, G.w_dim)
        assert torch.equal(G.mapping(z, psi=1.0), w)
        assert torch.equal(w[:, 0], w[:, -1])  # the same w for every layer
        w0 = G.mapping(z, psi=0.0)
        torch.testing.assert_close(w0, G.w_avg.expand(4, G.num_ws, -1))
        torch.testing.assert_close(G.mapping(z, psi=0.5), (w + G.w_avg) / 2)
        # psi=0: every latent gives the image of w_avg
        img0 = G(z, psi=0.0)
        ref = G.synthesize(G.w_avg.expand(1, G.num_ws, -1))
        torch.testing.assert_close(img0, ref.expand(4, -1, -1, -1), rtol=0, atol=1e-6)
        assert not torch.allclose(G(z), img0), "psi=1 images equal the average image: vacuous"


def test_w_avg_is_tracked_in_training_only():
    G = _g(w_avg_beta=0.9)
    z = torch.randn(6, Z_DIM)
    assert not G.w_avg.any()
    G.eval()
    with torch.no_grad():
        w = G.mapping(z)[:, 0]
    assert not G.w_avg.any(), "eval mode moved w_avg"
    G.train()
    G.mapping(z)
    torch.testing.assert_close(G.w_avg, 0.1 * w.mean(0))  # 0.9 * 0 + 0.1 * batch mean
    G.mapping(z, update_w_avg=False)
    torch.testing.assert_close(G.w_avg, 0.1 * w.mean(0))
    G.mapping(z)
    torch.testing.assert_close(G.w_avg, 0.9 * 0.1 * w.mean(0) + 0.1 * w.mean(0))


def test_z_is_normalised():
    G = _g().eval()
    z = torch.randn(3, Z_DIM)
    with torch.no_grad():
        torch.testing.assert_close(G.mapping(5 * z), G.mapping(z))


# -- style mixing ----------------------------------------------------------------------------------------

def test_style_mixing_switches_to_a_second_latent_at_one_layer():
    G = _g(mixing_prob=1.0).train()
    z = torch.randn(4, Z_DIM)
    with torch.no_grad():
        for seed in range(5):
            torch.manual_seed(seed)
            ws = G.styles(z)
            own = G.mapping(z, update_w_avg=False)[:, 0]  # (B, w_dim)
            same = [torch.allclose(ws[:, i], own) for i in range(G.num_ws)]
            cutoff = same.index(False)
            assert cutoff >= 1 and all(same[:cutoff]) and not any(same[cutoff:]), same
            assert torch.equal(ws[:, cutoff:], ws[:, -1:].expand(-1, G.num_ws - cutoff, -1))  # one other w


def test_style_mixing_output_depends_on_both_latents():
    G = _g(mixing_prob=1.0).train()
    z, z_other = torch.randn(4, Z_DIM), torch.randn(4, Z_DIM)
    with torch.no_grad():
        torch.manual_seed(7)
        ref = G(z)
        torch.manual_seed(7)  # the same second latent and cutoff
        assert torch.equal(G(z), ref)
        torch.manual_seed(7)
        assert not torch.allclose(G(z_other), ref), "the first latent is ignored"
        torch.manual_seed(8)  # another second latent
        assert not torch.allclose(G(z), ref), "the second latent is ignored"
        G.mixing_prob = 0.0
        torch.manual_seed(8)
        a = G(z)
        torch.manual_seed(9)
        assert torch.equal(G(z), a), "without mixing the global RNG still changes the image"


def test_mix_styles_grid():
    rows = torch.arange(2.0).view(2, 1, 1).expand(2, 4, 3)  # row r: every layer filled with r
    cols = 10 + torch.arange(3.0).view(3, 1, 1).expand(3, 4, 3)  # column c: 10 + c
    grid = mix_styles(rows, cols, [1, 2])
    assert grid.shape == (6, 4, 3)
    for r in range(2):
        for c in range(3):
            cell = grid[r * 3 + c, :, 0].tolist()
            assert cell == [r, 10 + c, 10 + c, r]
    assert torch.equal(mix_styles(rows, cols, []), rows.repeat_interleave(3, 0))
    with pytest.raises(ValueError, match="layer indices must be in 0..3"):
        mix_styles(rows, cols, [4])
    G = _g().eval()
    with torch.no_grad():
        ws = mix_styles(G.mapping(torch.randn(2, Z_DIM)), G.mapping(torch.randn(3, Z_DIM)), range(G.num_ws // 2))
        assert G.synthesize(ws).shape == (6, 1, 28, 28)


# -- noise --------------------------------------------------------------------------------------------

def test_noise_modes():
    G = _g(noise_mode="random").eval()
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, StyleConv) and not m.rgb:
                m.noise_strength.fill_(0.5)
        z = torch.randn(2, Z_DIM)
        assert not torch.equal(G(z), G(z)), "random noise gave the same image twice"
        const = G(z, noise_mode="const")
        assert torch.equal(G(z, noise_mode="const"), const)
        none = G(z, noise_mode="none")
        assert torch.equal(G(z, noise_mode="none"), none) and not torch.allclose(none, const)
        planes = [torch.zeros(s) for s in G.noise_shapes()]
        torch.testing.assert_close(G.synthesize(G.mapping(z), noise=planes), none)
        with pytest.raises(ValueError, match="noise needs 5 planes"):
            G.synthesize(G.mapping(z), noise=planes[1:])
    assert len(G.noise_shapes()) == G.num_ws - 1  # one per modulated conv
    with pytest.raises(ValueError, match="unknown noise_mode 'fixed'"):
        _g(noise_mode="fixed")


# -- layout ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,num_ws", [((1, 28, 28), 6), ((3, 32, 32), 8), ((1, 64, 64), 10)])
@pytest.mark.parametrize("architecture", ["skip", "resnet"])
def test_num_ws_and_synthesize(shape, num_ws, architecture):
    G = _g(shape, architecture=architecture).eval()
    assert G.num_ws == num_ws  # 2 per doubling + the base conv + the last toRGB
    ws = torch.randn(2, num_ws, G.w_dim)
    with torch.no_grad():
        assert G.synthesize(ws).shape == (2, *shape)
        # every layer's w matters
        for i in range(num_ws):
            ws2 = ws.clone()
            ws2[:, i] += 1
            assert not torch.allclose(G.synthesize(ws2), G.synthesize(ws)), f"layer {i} ignores its w"
    with pytest.raises(ValueError, match="ws must have shape"):
        G.synthesize(torch.randn(2, num_ws + 1, G.w_dim))
    n_rgb = sum(1 for m in G.modules() if isinstance(m, StyleConv) and m.rgb)
    assert n_rgb == (len(G.blocks) if architecture == "skip" else 1)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        _g(architecture="orig")
    with pytest.raises(ValueError, match="mixing_prob"):
        _g(mixing_prob=1.5)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\)"):
        _g()(torch.randn(2, 5))


# -- conditional ----------------------------------------------------------------------------------------

def test_conditional_g_and_projection_d_use_the_labels():
    G = _g(num_classes=K).eval()
    torch.manual_seed(1)
    D = StyleGAN2Discriminator(in_shape=(1, 28, 28), num_classes=K, **TINY_D)
    z, y = torch.randn(4, Z_DIM), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        x = G(z, y)
        assert not torch.allclose(G(z, (y + 1) % K), x)
        assert (D(x, y) - D(x, (y + 1) % K)).abs().min() > 0
        soft = F.one_hot(y, K).float()  # soft labels (rows of class weights) equal hard ones
        torch.testing.assert_close(G(z, soft), x)
    with pytest.raises(ValueError, match="pass class labels y"):
        G(z)
    with pytest.raises(ValueError, match="pass class labels y"):
        D(x)


def test_discriminator_mbstd_sees_the_batch():
    torch.manual_seed(0)
    D = StyleGAN2Discriminator(in_shape=(1, 28, 28), mbstd=4, **TINY_D).eval()
    x = torch.randn(4, 1, 28, 28)
    x2 = x.clone()
    x2[1:] = torch.randn(3, 1, 28, 28)  # change the other samples of sample 0's group
    with torch.no_grad():
        assert D(x)[0] != D(x2)[0]
        D0 = StyleGAN2Discriminator(in_shape=(1, 28, 28), mbstd=0, **TINY_D).eval()
        assert D0(x)[0] == D0(x2)[0]


def test_equalised_lr_ignores_model_init():
    """Weights are stored N(0, 1) and scaled at run time, whatever model.init says."""
    cfg = ModelConfig(arch="stylegan2", z_dim=Z_DIM, init="normal", init_gain=0.02, g=TINY_G, d=TINY_D)
    G, D, _, _ = build_nets(cfg, (1, 28, 28))
    stds = [p.std().item() for net in (G, D) for n, p in net.named_parameters() if p.dim() == 4 and p.numel() > 100]
    assert stds and all(0.8 < s < 1.2 for s in stds), stds


# -- the shared family checks ------------------------------------------------------------------------------

class TinyBuild:
    """``build`` for the shared checks: this family's tiny kwargs, and conditional nets (from
    build_nets with model.conditional) wrapped to supply labels when ``num_classes`` > 0. Mixed in
    before NetFamilyChecks, so each test class stays a direct subclass of it (test_nets.py counts those)."""

    g_kwargs: dict = {}
    d_kwargs: dict = {}
    num_classes = 0

    def build(self, shape, *, seed: int = 0, init: str = "normal", gain: float = 0.02,
              g: dict | None = None, d: dict | None = None):
        cfg = ModelConfig(arch=self.arch, z_dim=Z_DIM, init=init, init_gain=gain, conditional=self.num_classes > 0,
                          g={**self.g_kwargs, **(g or {})}, d={**self.d_kwargs, **(d or {})})
        torch.manual_seed(seed)
        G, D, _, _ = build_nets(cfg, shape, num_classes=self.num_classes)
        if self.num_classes:
            return WithLabels(G, self.num_classes), WithLabels(D, self.num_classes)
        return G, D


class TestStyleGAN2(TinyBuild, NetFamilyChecks):
    arch = "stylegan2"
    shapes = ((1, 28, 28), (3, 32, 32), (1, 64, 64))
    rejected_shapes = ((2,), (1, 30, 30), (3, 32, 16))
    g_kwargs, d_kwargs = TINY_G, TINY_D


class TestStyleGAN2ResNetG(TinyBuild, NetFamilyChecks):
    arch = "stylegan2"
    shapes = ((1, 28, 28),)
    g_kwargs, d_kwargs = {**TINY_G, "architecture": "resnet"}, TINY_D


class TestStyleGAN2Conditional(TinyBuild, NetFamilyChecks):
    arch = "stylegan2"
    g_kwargs, d_kwargs = TINY_G, TINY_D
    shapes = ((1, 28, 28), (3, 32, 32))
    num_classes = K


class WithLabels(nn.Module):
    """A conditional net called like an unconditional one: sample i gets class i mod K, so the
    shared checks exercise the label layers too."""

    def __init__(self, net: nn.Module, num_classes: int):
        super().__init__()
        self.net, self.num_classes = net, num_classes

    def forward(self, x, y=None):
        return self.net(x, torch.arange(x.shape[0], device=x.device) % self.num_classes)


def test_registered():
    fam = NETS.get("stylegan2")
    assert fam.generator is StyleGAN2Generator and fam.conditional and fam.images_only and fam.task == "generate"
