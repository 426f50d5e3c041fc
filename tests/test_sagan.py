"""The SAGAN family: the shared family checks (unconditional and conditional), self-attention at the
requested resolution in G and D, spectral norm in both nets, conditional BN in G and projection in
D. Tiny nets (width 8)."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize

from ganforge.config import ConfigError, ModelConfig
from ganforge.nets import NETS, build_nets
from ganforge.nets.layers import ConditionalBatchNorm2d, SelfAttention2d
from ganforge.nets.sagan import SAGANDiscriminator, SAGANGenerator
from test_nets import NetFamilyChecks, pytest_generate_tests  # noqa: F401  (the hook parametrises the checks)
from test_stylegan2 import TinyBuild

pytestmark = pytest.mark.usefixtures("one_thread")

Z_DIM = 8
K = 3
TINY = {"width": 8}


def _nets(shape=(1, 28, 28), num_classes=0, seed=0, g=None, d=None):
    torch.manual_seed(seed)
    G = SAGANGenerator(z_dim=Z_DIM, out_shape=shape, num_classes=num_classes, **{**TINY, **(g or {})})
    D = SAGANDiscriminator(in_shape=shape, num_classes=num_classes, **{**TINY, **(d or {})})
    return G, D


def _sigmas(net):
    return [torch.linalg.matrix_norm(m.weight.detach().reshape(m.weight.shape[0], -1), ord=2).item()
            for m in net.modules() if parametrize.is_parametrized(m, "weight")]


class TestSAGAN(TinyBuild, NetFamilyChecks):
    arch = "sagan"
    shapes = ((1, 28, 28), (3, 32, 32), (1, 64, 64))
    rejected_shapes = ((2,), (1, 30, 30), (3, 32, 16))
    g_kwargs, d_kwargs = TINY, TINY


class TestSAGANConditional(TinyBuild, NetFamilyChecks):
    arch = "sagan"
    g_kwargs, d_kwargs = TINY, TINY
    shapes = ((1, 28, 28), (3, 32, 32))
    num_classes = K


@pytest.mark.parametrize("shape,attn_res,g_index,d_index", [
    ((1, 28, 28), None, 0, 0),  # default: half the image size (14 px) in both nets
    ((1, 28, 28), 28, 1, None),  # G's last block; D has no 28 px block
    ((1, 28, 28), 7, None, 1),  # D's 7 px block; G starts at 7 px, has no block reaching it
    ((3, 32, 32), 16, 1, 0),
    ((1, 64, 64), 32, 2, 0),
    ((1, 64, 64), 8, 0, 2),
])
def test_attention_goes_where_asked(shape, attn_res, g_index, d_index):
    fam = NETS.get("sagan")
    if g_index is None:
        with pytest.raises(ValueError, match=f"attn_res={attn_res} is not a block resolution"):
            SAGANGenerator(z_dim=Z_DIM, out_shape=shape, attn_res=attn_res, **TINY)
    else:
        G = fam.generator(z_dim=Z_DIM, out_shape=shape, attn_res=attn_res, **TINY)
        assert G.attn_after == g_index
        # the feature map the attention sees has the requested size
        seen = []
        G.attn.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1]))
        G(torch.randn(2, Z_DIM))
        assert seen == [attn_res or shape[1] // 2]
    if d_index is None:
        with pytest.raises(ValueError, match=f"attn_res={attn_res} is not a block resolution"):
            SAGANDiscriminator(in_shape=shape, attn_res=attn_res, **TINY)
    else:
        D = fam.discriminator(in_shape=shape, attn_res=attn_res, **TINY)
        seen = []
        D.attn.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1]))
        D(torch.randn(2, *shape))
        assert seen == [attn_res or shape[1] // 2]


def test_attention_can_be_switched_off_and_is_trained():
    G, D = _nets(g={"attn_res": 0}, d={"attn_res": 0})
    assert G.attn is None and D.attn is None
    assert not any(isinstance(m, SelfAttention2d) for m in (*G.modules(), *D.modules()))
    G, D = _nets()
    z = torch.randn(4, Z_DIM)
    G.eval()
    with torch.no_grad():
        x = G(z)
        G.attn.gamma.fill_(1.0)  # gamma starts at 0: the block is the identity until trained
        assert not torch.allclose(G(z), x)
    G.train()
    D(G(z)).mean().backward()
    assert G.attn.gamma.grad is not None and G.attn.gamma.grad != 0
    assert D.attn.gamma.grad is not None and D.attn.gamma.grad != 0


def test_spectral_norm_in_both_nets():
    G, D = _nets(num_classes=K)
    z, y = torch.randn(6, Z_DIM), torch.arange(6) % K
    with torch.no_grad():
        for _ in range(30):  # one power iteration per training-mode forward pass
            D(G(z, y), y)
    G.eval(), D.eval()
    for net in (G, D):
        sigmas = _sigmas(net)
        assert len(sigmas) >= 6
        assert all(abs(s - 1) < 0.05 for s in sigmas), sigmas
    assert parametrize.is_parametrized(D.head.embed, "weight")  # the projection embedding too
    G2, D2 = _nets(g={"sn": False}, d={"sn": False})
    assert not _sigmas(G2) and not _sigmas(D2)


def test_conditional_bn_in_g_and_projection_in_d():
    G, D = _nets(num_classes=K)
    cbn = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert cbn and all(m.num_classes == K for m in cbn)
    z, y = torch.randn(6, Z_DIM), torch.arange(6) % K
    G.eval(), D.eval()
    with torch.no_grad():
        x = G(z, y)
        assert torch.equal(G(z, (y + 1) % K), x)  # every class starts at gain 1, bias 0
        for m in cbn:
            m.gain.add_(0.3 * torch.randn_like(m.gain))
            m.bias.add_(0.3 * torch.randn_like(m.bias))
        x = G(z, y)
        assert not torch.allclose(G(z, (y + 1) % K), x)
        assert (D(x, y) - D(x, (y + 1) % K)).abs().min() > 0
        # projection: D(x, y) - D(x, y') = <embed(y) - embed(y'), h(x)>
        h = []
        D.linear.register_forward_hook(lambda m, i, o: h.append(i[0]))
        a, b = D(x, y), D(x, (y + 1) % K)
        e = D.head.embed.weight
        torch.testing.assert_close(a - b, ((e[y] - e[(y + 1) % K]) * h[0]).sum(1), rtol=1e-4, atol=1e-5)


def test_build_nets_conditional_and_refusals():
    cfg = ModelConfig(arch="sagan", z_dim=Z_DIM, conditional=True, g=TINY, d=TINY)
    G, D, g_args, d_args = build_nets(cfg, (1, 28, 28), num_classes=K)
    assert g_args["num_classes"] == d_args["num_classes"] == K
    y = torch.arange(4) % K
    assert D(G(torch.randn(4, Z_DIM), y), y).shape == (4,)
    bad = ModelConfig(arch="sagan", z_dim=Z_DIM, g={**TINY, "attn_res": 5}, d=TINY)
    with pytest.raises(ConfigError, match="attn_res=5"):
        build_nets(bad, (1, 28, 28))
