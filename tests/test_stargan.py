"""StarGAN nets (ganforge.nets.stargan) and its domain / reconstruction losses
(ganforge.losses_stargan): the family checks that apply to an image-and-domain -> image G and a
two-headed D, conditioning on the domain, and hand-computed loss values."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from ganforge.checkpoint import flatten, unflatten
from ganforge.losses_stargan import domain_classification_loss, reconstruction_loss
from ganforge.nets.stargan import StarDiscriminator, StarGenerator

pytestmark = pytest.mark.usefixtures("one_thread")

K, B = 4, 4
CASES = [((1, 28, 28), 3, (3, 3)), ((3, 32, 32), 3, (4, 4)), ((1, 28, 28), 2, (7, 7))]


def build(shape, n_layers=3, seed=0):
    torch.manual_seed(seed)
    G = StarGenerator(out_shape=shape, num_classes=K, width=8, n_blocks=1)
    D = StarDiscriminator(in_shape=shape, num_classes=K, width=8, n_layers=n_layers)
    return G, D


def images(n, shape, seed=0):
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("shape,n_layers,adv", CASES, ids=["28px", "32px-rgb", "28px-2layers"])
def test_shapes_and_range(shape, n_layers, adv):
    G, D = build(shape, n_layers)
    x = images(B, shape)
    out = G(x, torch.tensor([0, 1, 2, 3]))
    assert out.shape == (B, *shape) and out.abs().max() <= 1
    a, c = D(out)
    assert a.shape == (B, *adv) and c.shape == (B, K)
    G.eval(), D.eval()
    with torch.no_grad():
        assert G(x[:1], torch.tensor([2])).shape == (1, *shape)
        assert D(x[:1])[1].shape == (1, K)


def test_domain_label_changes_the_output():
    G, _ = build((1, 28, 28))
    G.eval()
    x = images(B, (1, 28, 28))
    with torch.no_grad():
        outs = [G(x, torch.full((B,), k)) for k in range(K)]
        for i in range(K):
            for j in range(i + 1, K):
                assert (outs[i] - outs[j]).abs().mean() > 1e-4
        # class indices mean one-hot vectors; multi-hot attribute vectors are accepted too
        assert torch.allclose(G(x, torch.full((B,), 2)), G(x, torch.eye(K)[[2] * B]))
        multi = torch.tensor([[1.0, 0, 1, 0]] * B)
        assert not torch.allclose(G(x, multi), outs[0])
    with pytest.raises(ValueError, match="domain indices must be in"):
        G(x, torch.full((B,), K))
    with pytest.raises(ValueError, match="domain vectors"):
        G(x, torch.ones(B, K + 1))


def test_classification_head_learns_a_separable_problem():
    """Domain k = images whose quadrant k is bright: a few Adam steps must cut the cross-entropy."""
    shape = (1, 28, 28)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(32) % K
    x = torch.rand(32, *shape, generator=g) * 0.4 - 1
    for i, k in enumerate(y.tolist()):
        r, c = divmod(k, 2)
        x[i, :, 14 * r:14 * r + 14, 14 * c:14 * c + 14] += 1.5
    _, D = build(shape)
    opt = torch.optim.Adam(D.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        loss = domain_classification_loss(logits=D(x)[1], target=y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert abs(losses[0] - math.log(K)) < 0.2  # chance at the start (near-zero logits)
    assert losses[-1] < 0.5 * losses[0], losses


def test_one_step_changes_parameters():
    shape = (1, 28, 28)
    G, D = build(shape)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=1e-2), torch.optim.Adam(D.parameters(), lr=1e-2)
    x, src, tgt = images(B, shape), torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 0])
    g0, d0 = [p.detach().clone() for p in G.parameters()], [p.detach().clone() for p in D.parameters()]
    adv_real, cls_real = D(x)
    adv_fake, _ = D(G(x, tgt).detach())
    loss_d = adv_fake.mean() - adv_real.mean() + domain_classification_loss(logits=cls_real, target=src)
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    for p, p0 in zip(D.parameters(), d0):
        assert p.grad is not None and not torch.equal(p, p0)
    assert all(torch.equal(p, q) for p, q in zip(G.parameters(), g0))
    D.requires_grad_(False)
    fake = G(x, tgt)
    adv, cls = D(fake)
    loss_g = (-adv.mean() + domain_classification_loss(logits=cls, target=tgt)
              + 10 * reconstruction_loss(real=x, reconstructed=G(fake, src)))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    moved = [not torch.equal(p, p0) for p, p0 in zip(G.parameters(), g0)]
    assert all(p.grad is not None for p in G.parameters()) and moved[0] and moved[-1]


def test_safetensors_round_trip_and_seeded_init(tmp_path):
    shape = (1, 28, 28)
    G, D = build(shape, seed=0)
    path = tmp_path / "nets.safetensors"
    save_file(flatten({"G": G.state_dict(), "D": D.state_dict()}), str(path))
    G2, D2 = build(shape, seed=1)
    x, c = images(B, shape), torch.tensor([3, 2, 1, 0])
    for net in (G, D, G2, D2):
        net.eval()
    with torch.no_grad():
        assert not torch.equal(G(x, c), G2(x, c))
        nets = unflatten(load_file(str(path)))
        G2.load_state_dict(nets["G"])
        D2.load_state_dict(nets["D"])
        assert torch.equal(G(x, c), G2(x, c))
        assert all(torch.equal(a, b) for a, b in zip(D(x), D2(x)))
    G3, D3 = build(shape, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(D.state_dict().values(), D3.state_dict().values()))


def test_spectral_norm_option_and_refusals():
    D = StarDiscriminator(in_shape=(1, 28, 28), num_classes=K, width=8, sn=True)
    assert sum(hasattr(m, "parametrizations") for m in D.modules()) == 5  # 3 trunk convs + 2 heads
    with pytest.raises(ValueError, match="too small"):
        StarDiscriminator(in_shape=(1, 28, 28), n_layers=5)
    with pytest.raises(ValueError, match="at least 8x8"):
        StarGenerator(out_shape=(1, 4, 4))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        StarGenerator(out_shape=(2,))


def test_domain_losses_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
    # softmax cross-entropy, one domain per image
    ce = [-(2.0 - math.log(math.exp(2) + 1 + math.exp(-1))),
          -(1.0 - math.log(2 * math.exp(0.5) + math.exp(1)))]
    got = domain_classification_loss(logits=logits, target=torch.tensor([0, 2]))
    assert abs(got.item() - sum(ce) / 2) < 1e-6
    # multi-hot: sum over attributes of the binary cross-entropy, mean over the batch
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    sig = lambda v: 1 / (1 + math.exp(-v))
    bce = sum(-(t * math.log(sig(v)) + (1 - t) * math.log(1 - sig(v)))
              for row, trow in zip(logits.tolist(), target.tolist()) for v, t in zip(row, trow))
    assert abs(domain_classification_loss(logits=logits, target=target).item() - bce / 2) < 1e-6
    real = torch.tensor([[0.0, 1.0], [-1.0, 0.5]])
    rec = torch.tensor([[0.5, 1.0], [1.0, 0.0]])
    assert abs(reconstruction_loss(real=real, reconstructed=rec).item() - (0.5 + 0 + 2 + 0.5) / 4) < 1e-7


@pytest.mark.parametrize("init", ["normal", "xavier", "kaiming", "orthogonal", "default"])
def test_every_init_builds_finite_nets(init):
    from ganforge.nets import init_weights_
    G, D = build((1, 28, 28))
    init_weights_(G, init, 0.5)
    init_weights_(D, init, 0.5)
    with torch.no_grad():
        adv, cls = D(G(images(B, (1, 28, 28)), torch.tensor([0, 1, 2, 3])))
    assert torch.isfinite(adv).all() and torch.isfinite(cls).all()


def test_family_builds_through_build_nets():
    """The registered family: the data's domain count reaches both nets as num_classes (it is set
    by the data, not by hand, and the family is not class-conditional in the model.conditional sense)."""
    from ganforge.config import ConfigError, ModelConfig
    from ganforge.nets import NETS, NetFamily, build_nets
    fam = NETS.get("stargan")
    assert fam == NetFamily(StarGenerator, StarDiscriminator, task="multidomain", images_only=True, class_nets="gd")
    assert not fam.conditional
    cfg = ModelConfig(arch="stargan", z_dim=0, g={"width": 8, "n_blocks": 1}, d={"width": 8})
    G, D, g_args, d_args = build_nets(cfg, (1, 28, 28), num_classes=3)
    assert g_args["num_classes"] == d_args["num_classes"] == 3
    assert D(G(images(2, (1, 28, 28)), torch.tensor([0, 2])))[1].shape == (2, 3)
    with pytest.raises(ConfigError, match="num_classes"):
        build_nets(ModelConfig(arch="stargan", g={"num_classes": 3}), (1, 28, 28), num_classes=3)
    with pytest.raises(ConfigError, match="needs labelled data"):
        build_nets(cfg, (1, 28, 28), num_classes=0)