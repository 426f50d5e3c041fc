"""Class-conditional nets, minibatch std, PacGAN packing, the ResNet (SNGAN) and BigGAN families.

The shared family checks of test_nets.py run here for ``resnet`` and ``biggan`` (TestResNet,
TestBigGAN); the rest checks what conditioning adds: label-dependent outputs of G and D for every
D mode (concat, projection, acgan), clear refusals, spectral norm, self-attention at init, the
orthogonal penalty against hand-computed values, and that one optimiser step trains the label
layers. Every net is tiny (width 8 / hidden 16, batches of 8 or fewer).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from conftest import TINY_NET_KWARGS
from ganforge.config import ConfigError, ModelConfig
from ganforge.nets import NETS, build_nets
from ganforge.nets.biggan import BigGANDiscriminator, BigGANGenerator
from ganforge.nets.layers import (ConditionalBatchNorm2d, MinibatchStdDev, SelfAttention2d, concat_labels,
                                  layout_like, orthogonal_penalty, pack_samples)

pytestmark = pytest.mark.usefixtures("one_thread")

Z_DIM = 8
K = 5  # classes
B = 6
CONDITIONAL = ("mlp", "dcgan", "resnet", "biggan")
D_MODES = ("concat", "projection", "acgan")
SHAPES = ((1, 28, 28), (3, 32, 32))


# -- helpers ----------------------------------------------------------------------------------------

def _nets(arch: str, shape=(1, 28, 28), *, num_classes: int = K, seed: int = 0, g: dict | None = None,
          d: dict | None = None):
    """Tiny (G, D) straight from the constructors (PyTorch's default init)."""
    fam = NETS.get(arch)
    g_kw, d_kw = TINY_NET_KWARGS[arch]
    torch.manual_seed(seed)
    G = fam.generator(z_dim=Z_DIM, out_shape=shape, num_classes=num_classes, **{**g_kw, **(g or {})})
    D = fam.discriminator(in_shape=shape, num_classes=num_classes, **{**d_kw, **(d or {})})
    return G, D


def _labels(n: int = B, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, K, (n,), generator=torch.Generator().manual_seed(seed))


def _other(y: torch.Tensor) -> torch.Tensor:
    return (y + 1) % K  # every label changed


def _perturb_class_bn(G: nn.Module) -> None:
    """Give every class its own BN gain and bias, as training would."""
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, ConditionalBatchNorm2d) and m.num_classes:
                m.gain.add_(0.3 * torch.randn_like(m.gain))
                m.bias.add_(0.3 * torch.randn_like(m.bias))


def _sigmas(net: nn.Module) -> list[float]:
    """Largest singular value of each spectrally normalised weight, as the layer uses it."""
    return [torch.linalg.matrix_norm(m.weight.detach().reshape(m.weight.shape[0], -1), ord=2).item()
            for m in net.modules() if parametrize.is_parametrized(m, "weight")]


# -- conditional G and D: shapes, label dependence, refusals -------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mode", D_MODES)
@pytest.mark.parametrize("arch", CONDITIONAL)
def test_conditional_shapes_and_label_dependence(arch, mode, shape):
    G, D = _nets(arch, shape, d={"cond": mode})
    z, y = torch.randn(B, Z_DIM), _labels()
    x = G(z, y)
    assert x.shape == (B, *shape) and x.abs().max() <= 1
    out = D(x, y)
    with torch.no_grad():
        G.eval(), D.eval()  # fixed BN statistics: only the labels differ between the calls below
        x = G(z, y)
        if arch == "resnet":  # class-conditional BN starts at gain 1, bias 0 for every class
            assert torch.equal(G(z, _other(y)), x)
            _perturb_class_bn(G)
            x = G(z, y)
        assert not torch.allclose(G(z, _other(y)), x), "G ignores its labels"
        a, b = D(x, y), D(x, _other(y))
    if mode == "acgan":
        assert isinstance(out, tuple) and len(out) == 2
        assert out[0].shape == (B,) and out[1].shape == (B, K)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), "the ACGAN D reads no labels"
        assert not torch.allclose(D(-x, y)[1], a[1]), "the class head ignores the image"
    else:
        assert isinstance(out, torch.Tensor) and out.shape == (B,)
        assert (a - b).abs().min() > 0, "changing every label left some D output unchanged"


@pytest.mark.parametrize("arch", CONDITIONAL)
def test_default_cond_mode(arch):
    _, D = _nets(arch)
    assert D.cond == ("concat" if arch in ("mlp", "dcgan") else "projection")


@pytest.mark.parametrize("arch", CONDITIONAL)
def test_missing_labels_are_refused(arch):
    G, D = _nets(arch)
    with pytest.raises(ValueError, match=r"num_classes=5: pass class labels y"):
        G(torch.randn(2, Z_DIM))
    with pytest.raises(ValueError, match=r"num_classes=5: pass class labels y"):
        D(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"labels y must have shape \(2,\)"):
        G(torch.randn(2, Z_DIM), torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("arch", CONDITIONAL)
def test_unconditional_nets_ignore_labels(arch):
    G, D = _nets(arch, num_classes=0)
    G.eval(), D.eval()
    z, y = torch.randn(2, Z_DIM), torch.tensor([0, 1])
    with torch.no_grad():
        assert torch.equal(G(z), G(z, y))
        x = G(z)
        assert torch.equal(D(x), D(x, y))


@pytest.mark.parametrize("arch", CONDITIONAL)
def test_unknown_cond_is_refused(arch):
    with pytest.raises(ValueError, match="unknown cond 'proj'; choose from concat, projection, acgan"):
        _nets(arch, d={"cond": "proj"})
    cfg = ModelConfig(arch=arch, z_dim=Z_DIM, conditional=True, d={**TINY_NET_KWARGS[arch][1], "cond": "proj"})
    with pytest.raises(ConfigError, match="unknown cond"):
        build_nets(cfg, (1, 28, 28), num_classes=K)


@pytest.mark.parametrize("arch", CONDITIONAL)
def test_build_nets_makes_conditional_nets(arch):
    g_kw, d_kw = TINY_NET_KWARGS[arch]
    cfg = ModelConfig(arch=arch, z_dim=Z_DIM, conditional=True, g=g_kw, d=d_kw)
    G, D, g_args, d_args = build_nets(cfg, (1, 28, 28), num_classes=K)
    assert NETS.get(arch).conditional
    assert g_args["num_classes"] == d_args["num_classes"] == K
    y = _labels()
    assert D(G(torch.randn(B, Z_DIM), y), y).shape == (B,)
    # the weight initialisation keeps class-conditional BN at gain 1, bias 0
    for m in G.modules():
        if isinstance(m, ConditionalBatchNorm2d) and m.num_classes:
            assert torch.equal(m.gain, torch.ones_like(m.gain)) and not m.bias.any()


def test_conditional_unconditional_state_dict_keys_unchanged():
    """Unconditional DCGAN / MLP nets keep the layer names of earlier checkpoints."""
    _, D = _nets("dcgan", num_classes=0)
    assert [k for k in D.state_dict() if k.endswith("weight")] == ["net.0.weight", "net.2.weight", "net.3.weight",
                                                                   "net.5.weight"]
    G, D = _nets("mlp", (2,), num_classes=0)
    assert [k for k in D.state_dict()] == ["net.1.weight", "net.1.bias", "net.4.weight", "net.4.bias",
                                           "net.7.weight", "net.7.bias"]
    assert list(G.state_dict())[0] == "net.0.weight" and G.net[0].in_features == Z_DIM


@pytest.mark.parametrize("sn", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_dcgan_concat_d_matches_the_concatenated_label_planes(sn, shape):
    """The concat D's first conv skips building the K label planes (conv_label_planes): its scores
    and every gradient match the plain conv over [x, K constant one-hot planes], for class indices
    and soft labels; with spectral norm the power iteration steps once per forward, as before."""
    torch.manual_seed(0)
    _, D = _nets("dcgan", shape, d={"cond": "concat", "sn": sn})
    ref = copy.deepcopy(D)

    def planes_forward(x, y):
        h = concat_labels(x, y, K)  # (B, C + K, H, W)
        for layer in ref.net:
            h = layer(h)
        return h.view(-1)

    for y in (_labels(), torch.softmax(torch.randn(B, K), 1)):
        x = torch.randn(B, *shape, requires_grad=True)
        out, want = D(x, y), planes_forward(x, y)
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
        got_g = torch.autograd.grad(out.square().sum(), [x, *D.parameters()])
        want_g = torch.autograd.grad(want.square().sum(), [x, *ref.parameters()])
        for a, b in zip(got_g, want_g):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    if sn:
        for name, buf in D.named_buffers():
            torch.testing.assert_close(buf, dict(ref.named_buffers())[name])  # same power-iteration state


# -- spectral norm ------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch,mode", [("resnet", "projection"), ("resnet", "acgan"), ("biggan", "projection"),
                                       ("dcgan", "projection"), ("mlp", "acgan")])
def test_spectral_norm_keeps_largest_singular_value_near_one(arch, mode):
    G, D = _nets(arch, d={"sn": True, "cond": mode})
    z, y = torch.randn(B, Z_DIM), _labels()
    with torch.no_grad():
        for _ in range(30):  # one power iteration per forward pass in train mode
            D(G(z, y), y)
    G.eval(), D.eval()
    nets = (G, D) if arch == "biggan" else (D,)  # BigGAN normalises G too
    for net in nets:
        sigmas = _sigmas(net)
        assert len(sigmas) >= 4, "too few normalised layers"
        assert all(abs(s - 1) < 0.05 for s in sigmas), sigmas
    # the label layers are normalised too (projection embedding / class head)
    label_layer = D.head.embed if mode == "projection" else D.head.classify
    assert parametrize.is_parametrized(label_layer, "weight")


def test_spectral_norm_can_be_switched_off():
    G, D = _nets("biggan", g={"sn": False}, d={"sn": False})
    _, D2 = _nets("resnet", d={"sn": False})
    assert not _sigmas(G) and not _sigmas(D) and not _sigmas(D2)


# -- minibatch standard deviation ------------------------------------------------------------------------

def test_minibatch_stddev_matches_hand_computation():
    x = torch.tensor([1.0, 2.0, 3.0, 6.0, 5.0, 4.0, 7.0, 10.0]).view(4, 2, 1, 1)  # samples (1,2) (3,6) (5,4) (7,10)
    out = MinibatchStdDev(group_size=2)(x)
    assert out.shape == (4, 3, 1, 1)
    assert torch.equal(out[:, :2], x)
    # groups are {0, 2} and {1, 3}; std over a group of two = |a - b| / 2, then the mean over features
    g0 = (abs(1 - 5) / 2 + abs(2 - 4) / 2) / 2
    g1 = (abs(3 - 7) / 2 + abs(6 - 10) / 2) / 2
    assert torch.allclose(out[:, 2].flatten(), torch.tensor([g0, g1, g0, g1]), atol=1e-3)
    assert torch.allclose(MinibatchStdDev(4)(torch.ones(1, 2, 3, 3))[:, 2], torch.full((1, 3, 3), 1e-4))
    assert MinibatchStdDev(4)(torch.randn(6, 2, 3, 3)).shape == (6, 3, 3, 3)  # 6 is no multiple of 4: groups of 3


@pytest.mark.parametrize("arch", ["resnet", "stylegan2"])
def test_channels_last_discriminators_keep_their_layout_after_a_grey_image(arch):
    """A one-channel image gives NCHW from the first conv whatever the weights' layout; the nets put
    it back into the weights' layout (else every later op converts or mixes layouts), and D's output
    is unchanged by it."""
    _, D = _nets(arch, num_classes=0, d={"mbstd": 4})
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        D.eval()
        ref = D(x)
        D = D.to(memory_format=torch.channels_last)
        seen = []
        for m in D.modules():
            if isinstance(m, nn.Conv2d) or type(m).__name__ == "EqualConv2d":
                m.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
        out = D(x.to(memory_format=torch.channels_last))
    wide = [t for t in seen if t.shape[1] > 1 and t.shape[2] > 1]
    assert wide and all(t.is_contiguous(memory_format=torch.channels_last) for t in wide)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_layout_like_follows_the_reference_only_in_channels_last_mode():
    x = torch.randn(2, 3, 4, 4)
    cl = torch.randn(5, 3, 3, 3).contiguous(memory_format=torch.channels_last)
    assert layout_like(x, cl).is_contiguous(memory_format=torch.channels_last)
    assert layout_like(x, torch.randn(5, 3, 3, 3)) is x
    assert layout_like(x, torch.randn(5, 1, 1, 1)) is x  # ambiguous reference: left alone
    out = MinibatchStdDev(2)(torch.randn(4, 3, 5, 5).contiguous(memory_format=torch.channels_last))
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_mbstd_makes_d_see_the_other_samples(arch):
    x = torch.randn(8, 1, 28, 28)
    x2 = x.clone()
    x2[1:] = torch.randn(7, 1, 28, 28)
    for mbstd in (0, 4):
        _, D = _nets(arch, num_classes=0, d={"mbstd": mbstd})
        D.eval()  # DCGAN's batch norm uses its running statistics: samples otherwise independent
        with torch.no_grad():
            a, b = D(x)[0], D(x2)[0]
        if mbstd:
            assert a != b, "with mbstd sample 0's score must depend on its group"
            assert any(isinstance(m, MinibatchStdDev) for m in D.modules())
            assert D(x[:1]).shape == (1,)  # a single sample works (its std plane is 0)
        else:
            assert a == b


# -- PacGAN packing ------------------------------------------------------------------------------------

def test_pack_samples_puts_consecutive_samples_side_by_side():
    x = torch.arange(4 * 2 * 3 * 3, dtype=torch.float32).view(4, 2, 3, 3)
    p = pack_samples(x, 2)
    assert p.shape == (2, 4, 3, 3)
    assert torch.equal(p[1, :2], x[2]) and torch.equal(p[1, 2:], x[3])
    assert pack_samples(torch.randn(6, 5), 3).shape == (2, 15)


@pytest.mark.parametrize("arch", ["mlp", "dcgan", "resnet"])
def test_pack_reduces_outputs_and_refuses_a_bad_batch(arch):
    shape = (1, 28, 28)
    _, D = _nets(arch, shape, num_classes=0, d={"pack": 2})
    D.eval()
    x = torch.randn(8, *shape)
    with torch.no_grad():
        out = D(x)
        assert out.shape == (4,)
        x2 = x.clone()
        x2[2:] = torch.randn(6, *shape)
        assert D(x2)[0] == out[0] and (D(x2)[1:] != out[1:]).all()  # pack 0 holds samples 0 and 1 only
    with pytest.raises(ValueError, match="pack=2 needs a batch size divisible by 2, got 7"):
        D(x[:7])
    with pytest.raises(ValueError, match="not supported"):
        _nets(arch, shape, num_classes=K, d={"pack": 2})


def test_pack_for_vectors():
    _, D = _nets("mlp", (2,), num_classes=0, d={"pack": 4})
    assert D(torch.randn(8, 2)).shape == (2,)
    assert D.net[1].in_features == 8


# -- self-attention --------------------------------------------------------------------------------------

def test_self_attention_is_the_identity_at_init():
    attn = SelfAttention2d(16)
    assert attn.gamma.item() == 0.0
    assert attn.query.weight.shape[0] == 2  # channel reduction 8
    x = torch.randn(2, 16, 7, 7)
    assert torch.equal(attn(x), x)
    with torch.no_grad():
        attn.gamma.fill_(0.5)
    assert not torch.allclose(attn(x), x)


def test_self_attention_weights_sum_to_one_over_positions():
    attn = SelfAttention2d(8, sn=False)
    with torch.no_grad():
        attn.gamma.fill_(1.0)
        for conv in (attn.query, attn.key, attn.out):
            nn.init.zeros_(conv.weight)
        attn.out.weight[:, :, 0, 0] = 1.0  # o -> every channel; q = k = 0: uniform attention
    x = torch.randn(2, 8, 4, 4)
    v = attn.value(x).mean((2, 3), keepdim=True)  # uniform attention averages the values over positions
    assert torch.allclose(attn(x), x + v.sum(1, keepdim=True), atol=1e-5)


@pytest.mark.parametrize("shape,attn_res,index", [((1, 28, 28), None, 0), ((3, 32, 32), None, 1),
                                                    ((3, 32, 32), 8, 0), ((1, 28, 28), 0, -1)])
def test_biggan_places_attention_at_the_requested_resolution(shape, attn_res, index):
    G, D = _nets("biggan", shape, g={"attn_res": attn_res}, d={"attn_res": attn_res})
    assert G.attn_after == index
    if index >= 0:
        assert G.attn.gamma.item() == 0.0 and D.attn.gamma.item() == 0.0
    else:
        assert G.attn is None and D.attn is None
    with pytest.raises(ValueError, match="attn_res=12 is not a block resolution"):
        BigGANGenerator(z_dim=Z_DIM, out_shape=shape, width=8, attn_res=12)
    with pytest.raises(ValueError, match="attn_res=12 is not a block resolution"):
        BigGANDiscriminator(in_shape=shape, width=8, attn_res=12)


def test_biggan_hierarchical_latents():
    G, _ = _nets("biggan", (3, 32, 32))  # stem + 3 blocks: z of 8 splits 2, 2, 2, 2
    assert G.chunks == [2, 2, 2, 2]
    assert [b.norm1.gain.in_features for b in G.blocks] == [2 + 8] * 3  # chunk + shared embedding
    G0, _ = _nets("biggan", (1, 28, 28), num_classes=0)  # stem + 2 blocks: 3, 3, 2; the chunk alone
    assert G0.chunks == [3, 3, 2] and [b.norm1.gain.in_features for b in G0.blocks] == [3, 2]
    G.eval()
    z, y = torch.randn(2, Z_DIM), _labels(2)
    with torch.no_grad():
        for i in range(Z_DIM):  # every latent coordinate reaches the image
            z2 = z.clone()
            z2[:, i] += 1
            assert not torch.allclose(G(z2, y), G(z, y)), i
    with pytest.raises(ValueError, match="z_dim must be >= 4"):
        BigGANGenerator(z_dim=3, out_shape=(3, 32, 32), width=8)


# -- conditional batch norm -------------------------------------------------------------------------------

def test_conditional_batch_norm_per_class_gain_and_bias():
    bn = ConditionalBatchNorm2d(3, num_classes=2)
    assert torch.equal(bn.gain, torch.ones(2, 3)) and torch.equal(bn.bias, torch.zeros(2, 3))
    x = torch.randn(4, 3, 2, 2)
    plain = nn.BatchNorm2d(3, affine=False)(x)
    assert torch.allclose(bn(x, torch.tensor([0, 1, 0, 1])), plain, atol=1e-6)
    with torch.no_grad():
        bn.gain[1] = 2.0
        bn.bias[1] = 0.5
    out = bn(x, torch.tensor([0, 1, 0, 1]))
    assert torch.allclose(out[0::2], plain[0::2], atol=1e-6)
    assert torch.allclose(out[1::2], 2 * plain[1::2] + 0.5, atol=1e-6)
    assert isinstance(ConditionalBatchNorm2d(3, 0).bn, nn.BatchNorm2d) and ConditionalBatchNorm2d(3, 0).bn.affine


# -- orthogonal regularisation -------------------------------------------------------------------------------

def test_orthogonal_penalty_hand_computed():
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
        lin.bias.copy_(torch.tensor([1.0, 2.0]))
    # W W^T = [[14, 32], [32, 77]]: off-diagonal 32 twice -> 2 * 32^2
    assert orthogonal_penalty(lin).item() == pytest.approx(2048.0)
    # with the bias, reshaped to (2, 1): b b^T off-diagonal 1 * 2 twice -> + 8
    assert orthogonal_penalty(lin, exclude_1d=False).item() == pytest.approx(2056.0)
    assert orthogonal_penalty(lin, exclude=[lin.weight]).item() == 0.0
    # spectral norm: the penalty reads the original weight, not the normalised one
    sn = spectral_norm(nn.Linear(3, 2))
    with torch.no_grad():
        sn.parametrizations.weight.original.copy_(lin.weight)
    assert orthogonal_penalty(sn).item() == pytest.approx(2048.0)


def test_orthogonal_penalty_is_zero_for_orthogonal_weights():
    conv = nn.Conv2d(4, 3, 3)
    q, _ = torch.linalg.qr(torch.randn(36, 3, generator=torch.Generator().manual_seed(0)))  # orthonormal columns
    with torch.no_grad():
        conv.weight.copy_(q.T.reshape(3, 4, 3, 3))  # orthonormal rows once reshaped to (out, -1)
        conv.weight.mul_(2.5)  # any scale: only the off-diagonal of W W^T counts
    assert orthogonal_penalty(conv).item() == pytest.approx(0.0, abs=1e-9)
    assert orthogonal_penalty(nn.ReLU()).item() == 0.0


def test_orthogonal_penalty_trains_biggan_g():
    G, _ = _nets("biggan")
    penalty = orthogonal_penalty(G)
    assert penalty.ndim == 0 and penalty.item() > 0
    penalty.backward()
    assert G.stem.parametrizations.weight.original.grad.abs().sum() > 0
    # modified regulariser: gradient 4 (W W^T * (1 - I)) W for one weight
    w = torch.randn(3, 5, requires_grad=True)
    gram = w @ w.T
    layer = nn.Linear(5, 3, bias=False)
    layer.weight = nn.Parameter(w.detach().clone())
    orthogonal_penalty(layer).backward()
    expected = 4 * ((gram * (1 - torch.eye(3))) @ w).detach()
    assert torch.allclose(layer.weight.grad, expected, atol=1e-4)


# -- training -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch,mode", [(a, m) for a in CONDITIONAL for m in D_MODES])
def test_one_adam_step_trains_conditional_g_and_d(arch, mode):
    G, D = _nets(arch, (1, 28, 28), d={"cond": mode})
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-2)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-2)
    real, y = torch.rand(B, 1, 28, 28) * 2 - 1, _labels()

    def adv(out):
        return out[0] if isinstance(out, tuple) else out

    def aux(out):  # ACGAN's class loss on D's class head
        return nn.functional.cross_entropy(out[1], y) if isinstance(out, tuple) else 0.0

    d0 = {k: v.detach().clone() for k, v in D.named_parameters()}
    out_r, out_f = D(real, y), D(G(torch.randn(B, Z_DIM), y).detach(), y)
    loss_d = (nn.functional.softplus(-adv(out_r)).mean() + nn.functional.softplus(adv(out_f)).mean()
              + aux(out_r))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    moved = {k for k, v in D.named_parameters() if not torch.equal(v, d0[k])}
    assert moved, "a D step moved nothing"
    label_params = [k for k in d0 if k.startswith("head.") or (mode == "concat" and k == _first_weight(D))]
    assert label_params and all(k in moved for k in label_params), (label_params, moved)

    g0 = {k: v.detach().clone() for k, v in G.named_parameters()}
    D.requires_grad_(False)
    out = D(G(torch.randn(B, Z_DIM), y), y)
    loss_g = nn.functional.softplus(-adv(out)).mean() + aux(out)
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    moved = {k for k, v in G.named_parameters() if not torch.equal(v, g0[k])}
    assert len(moved) >= len(g0) // 2, f"a G step moved only {sorted(moved)}"
    label_params = [k for k in g0 if k.startswith("shared.") or k.endswith(("norm1.gain", "norm1.bias"))]
    if arch in ("mlp", "dcgan"):
        label_params = ["net.0.weight"]  # the one-hot label enters the first layer
    assert all(k in moved for k in label_params), (label_params, moved)
    assert all(math.isfinite(v.abs().sum().item()) for v in G.parameters())


def _first_weight(D: nn.Module) -> str:
    return next(k for k, _ in D.named_parameters() if k.endswith("weight") or k.endswith("original"))
