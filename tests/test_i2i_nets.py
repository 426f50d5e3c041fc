"""Image-to-image network families: pix2pix (U-Net + PatchGAN), CycleGAN (ResNet Gs + PatchGANs),
SRGAN (SRResNet + strided D).

One set of checks per family (shapes at 28 px and the other sizes it must support, tanh range,
one optimizer step moves G and D, rebuild from saved args, seeded init, every initialisation),
then the family-specific behaviour: conditioning on y, the two CycleGAN directions, SR scales,
and the sizes each family refuses.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge.config import ConfigError, ModelConfig
from ganforge.tasks import TASKS
from ganforge.nets import INITS, NETS, build_nets, rebuild
from ganforge.nets.cyclegan import CycleDiscriminator, CycleGenerator, ResnetGenerator
from ganforge.nets.pix2pix import PatchDiscriminator, UNetGenerator, crop, pad_to_multiple
from ganforge.nets.srgan import SRGANDiscriminator, SRResNetGenerator

pytestmark = pytest.mark.usefixtures("one_thread")

B = 4
TINY = {  # arch -> (model.g, model.d): widths 8, few blocks
    "pix2pix": ({"width": 8}, {"width": 8}),
    "cyclegan": ({"width": 8, "n_blocks": 2}, {"width": 8}),
    "srgan": ({"width": 8, "n_blocks": 2}, {"width": 8}),
}
# arch -> [(out_shape, cond_shape, D output shape per sample)]
CASES = {
    "pix2pix": [((1, 28, 28), (1, 28, 28), (5, 5)), ((3, 32, 32), (1, 32, 32), (6, 6))],
    "cyclegan": [((1, 28, 28), (1, 28, 28), (5, 5)), ((3, 28, 28), (1, 28, 28), (5, 5))],
    "srgan": [((1, 28, 28), (1, 14, 14), ()), ((1, 28, 28), (1, 7, 7), ()), ((3, 32, 32), (3, 8, 8), ())],
}
KIND = {"pix2pix": "paired", "cyclegan": "unpaired", "srgan": "paired"}
PARAMS = [(arch, *case) for arch, cases in CASES.items() for case in cases]
IDS = [f"{a}-{'x'.join(map(str, c))}-from-{'x'.join(map(str, i))}" for a, c, i, _ in PARAMS]


def build(arch, shape, cond, *, seed=0, init="normal", gain=0.02, g=None, d=None):
    g_kw, d_kw = TINY[arch]
    cfg = ModelConfig(arch=arch, z_dim=8, init=init, init_gain=gain, g={**g_kw, **(g or {})},
                      d={**d_kw, **(d or {})})
    torch.manual_seed(seed)
    G, D, g_args, d_args = build_nets(cfg, shape, cond_shape=cond)
    return G, D, cfg, g_args, d_args


def images(n, shape, seed=0):
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _state(net):
    return [p.detach().clone() for p in net.parameters()]


# -- checks shared by the three families -------------------------------------------------------

@pytest.mark.parametrize("arch,shape,cond,d_out", PARAMS, ids=IDS)
def test_shapes_and_range(arch, shape, cond, d_out):
    G, D, *_ = build(arch, shape, cond, gain=1.0)
    y = images(B, cond)
    x = G(None, y)
    assert x.shape == (B, *shape) and torch.isfinite(x).all()
    assert x.abs().max() <= 1.0  # tanh
    assert G(torch.randn(B, 8), y).shape == x.shape  # z is accepted and ignored
    assert D(x, y).shape == (B, *d_out)
    G.eval(), D.eval()  # one sample at a time (batch norm uses running stats)
    with torch.no_grad():
        assert G(None, y[:1]).shape == (1, *shape)
        assert D(x[:1], y[:1]).shape == (1, *d_out)


@pytest.mark.parametrize("arch,shape,cond,d_out", [p[:4] for p in PARAMS[::2]], ids=IDS[::2])
def test_one_step_changes_parameters(arch, shape, cond, d_out):
    G, D, *_ = build(arch, shape, cond, gain=0.2)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-2)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-2)
    real, y = images(B, shape, 1), images(B, cond, 2)

    def d_loss():
        fake = G(None, y).detach()
        loss = nn.functional.softplus(-D(real, y)).mean() + nn.functional.softplus(D(fake, y)).mean()
        if arch == "cyclegan":  # the objective trains D.a on domain A the same way
            loss = loss + nn.functional.softplus(-D.a(y)).mean() + nn.functional.softplus(D.a(G.ba(real).detach())).mean()
        return loss

    def g_loss():
        fake = G(None, y)
        loss = nn.functional.softplus(-D(fake, y)).mean()
        if arch == "cyclegan":  # G.ba gets its gradient from the cycle and from D.a
            loss = loss + (G.ba(fake) - y).abs().mean() + nn.functional.softplus(-D.a(G.ba(real))).mean()
        return loss

    g0, d0 = _state(G), _state(D)
    opt_d.zero_grad()
    d_loss().backward()
    opt_d.step()
    _assert_moved(D, d0)
    assert all(torch.equal(p, q) for p, q in zip(G.parameters(), g0)), "a D step changed G"

    d1 = _state(D)
    opt_g.zero_grad()
    D.requires_grad_(False)
    g_loss().backward()
    opt_g.step()
    _assert_moved(G, g0)
    assert all(torch.equal(p, q) for p, q in zip(D.parameters(), d1)), "a G step changed D"


def _assert_moved(net, before):
    params = list(net.parameters())
    for p, p0 in zip(params, before):
        assert p.grad is not None, "a parameter got no gradient (unused layer?)"
        assert torch.isfinite(p).all()
    assert not torch.equal(params[0], before[0]) and not torch.equal(params[-1], before[-1])


@pytest.mark.parametrize("arch", list(CASES))
def test_rebuild_from_saved_args_and_seeded_init(arch):
    shape, cond, _ = CASES[arch][0]
    G, D, cfg, g_args, d_args = build(arch, shape, cond, seed=3)
    assert g_args["cond_shape"] == list(cond)
    G2, D2 = rebuild(cfg, g_args, "g"), rebuild(cfg, d_args, "d")
    G2.load_state_dict(G.state_dict())
    D2.load_state_dict(D.state_dict())
    y, x = images(2, cond), images(2, shape)
    for net in (G, D, G2, D2):
        net.eval()
    with torch.no_grad():
        assert torch.equal(G(None, y), G2(None, y)) and torch.equal(D(x, y), D2(x, y))
        G3, *_ = build(arch, shape, cond, seed=3)
        G4, *_ = build(arch, shape, cond, seed=4)
        G3.eval(), G4.eval()
        assert torch.equal(G3(None, y), G(None, y)) and not torch.equal(G4(None, y), G(None, y))


@pytest.mark.parametrize("arch", list(CASES))
def test_every_init_builds_finite_nets(arch):
    shape, cond, _ = CASES[arch][0]
    for init in INITS.keys():
        G, D, *_ = build(arch, shape, cond, init=init, gain=0.5)
        with torch.no_grad():
            y = images(2, cond)
            assert torch.isfinite(D(G(None, y), y)).all(), init


def test_registered_families_and_tasks():
    from ganforge.config import resolve
    from ganforge.objectives import CycleObjective
    from ganforge.validation import validate
    assert NETS.get("pix2pix").task == "paired" and NETS.get("srgan").task == "paired"
    fam = NETS.get("cyclegan")
    assert fam.task == "unpaired" and TASKS.get(fam.task).objective is CycleObjective
    assert fam.generator is CycleGenerator and fam.discriminator is CycleDiscriminator
    with pytest.raises(ConfigError, match="paired image-to-image"):  # the dataset serves another task
        validate(resolve("pix2pix", overrides=["data.name=fashion-mnist"]))
    with pytest.raises(ConfigError, match="set by the data"):
        build_nets(ModelConfig(arch="srgan", g={"cond_shape": [1, 14, 14]}), (1, 28, 28),
                   cond_shape=(1, 14, 14))


# -- family-specific behaviour ---------------------------------------------------------------

def test_pix2pix_d_depends_on_y_and_srgan_d_ignores_it():
    D = PatchDiscriminator((1, 28, 28), (1, 28, 28), width=8).eval()
    x, y1, y2 = images(2, (1, 28, 28), 0), images(2, (1, 28, 28), 1), images(2, (1, 28, 28), 2)
    with torch.no_grad():
        assert not torch.allclose(D(x, y1), D(x, y2))
    with pytest.raises(ValueError, match="input image y"):
        D(x)
    D = SRGANDiscriminator((1, 28, 28), width=8).eval()
    with torch.no_grad():
        assert torch.equal(D(x, images(2, (1, 14, 14), 1)), D(x, images(2, (1, 14, 14), 2)))
        assert torch.equal(D(x), D(x, y1))


def test_patchgan_resizes_a_smaller_y_and_unconditional_ignores_y():
    D = PatchDiscriminator((1, 28, 28), (1, 14, 14), width=8)
    assert D(images(2, (1, 28, 28)), images(2, (1, 14, 14))).shape == (2, 5, 5)
    D = PatchDiscriminator((3, 32, 32), conditional=False, width=8).eval()
    x = images(2, (3, 32, 32))
    with torch.no_grad():
        assert torch.equal(D(x), D(x, images(2, (1, 32, 32))))
    # the paper's 70x70 PatchGAN gives a 30x30 map at 256 px
    assert PatchDiscriminator((3, 256, 256), (3, 256, 256), n_layers=3, width=4).out_size == (30, 30)


def test_cycle_generator_forward_is_ab_and_ba_goes_back():
    G = CycleGenerator(out_shape=(3, 28, 28), cond_shape=(1, 28, 28), width=8, n_blocks=1)
    D = CycleDiscriminator((3, 28, 28), (1, 28, 28), width=8)
    y = images(2, (1, 28, 28))
    x = G(None, y)
    assert torch.equal(x, G.ab(y))
    assert G.ba(x).shape == (2, 1, 28, 28)
    assert torch.equal(D(x), D.b(x)) and D.a(y).shape == (2, 5, 5)
    assert not D.a.conditional and not D.b.conditional


def test_unet_and_resnet_handle_odd_sizes():
    for s in (30, 20):
        G = UNetGenerator(out_shape=(1, s, s), cond_shape=(3, s, s), width=4)
        assert G(None, images(1, (3, s, s))).shape == (1, 1, s, s)
        R = ResnetGenerator((1, s, s), (1, s, s), width=4, n_blocks=1)
        assert R(images(1, (1, s, s))).shape == (1, 1, s, s)
    x = images(1, (1, 7, 5))
    padded, pad = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (8, 8) and torch.equal(crop(padded, pad), x)
    G = UNetGenerator(width=4).train()  # batch 1 in train mode (the paper's setting): no 1x1 batch norm
    assert G(None, images(1, (1, 28, 28))).shape == (1, 1, 28, 28)


def test_srgan_scale_from_shapes():
    assert SRResNetGenerator(out_shape=(1, 28, 28), cond_shape=(1, 14, 14), width=4).scale == 2
    assert SRResNetGenerator(out_shape=(1, 28, 28), cond_shape=(1, 7, 7), width=4).scale == 4
    ups = [m for m in SRResNetGenerator(out_shape=(1, 28, 28), cond_shape=(1, 7, 7), width=4).modules()
           if isinstance(m, nn.PixelShuffle)]
    assert len(ups) == 2


@pytest.mark.parametrize("make", [
    lambda: UNetGenerator(out_shape=(1, 28, 28), cond_shape=(1, 14, 14)),  # pix2pix: sizes must agree
    lambda: ResnetGenerator((1, 28, 28), (1, 32, 32)),
    lambda: CycleGenerator(out_shape=(1, 28, 28), cond_shape=(1, 32, 32)),
    lambda: SRResNetGenerator(out_shape=(1, 30, 30), cond_shape=(1, 10, 10)),  # x3
    lambda: SRResNetGenerator(out_shape=(1, 28, 28), cond_shape=(1, 28, 28)),  # x1
    lambda: SRResNetGenerator(out_shape=(1, 28, 28), cond_shape=(1, 10, 10)),  # not an integer
    lambda: SRResNetGenerator(out_shape=(1, 28, 32), cond_shape=(1, 14, 8)),  # x2 and x4
    lambda: PatchDiscriminator((1, 8, 8), (1, 8, 8)),  # smaller than the patches
    lambda: SRGANDiscriminator((1, 4, 4)),
    lambda: UNetGenerator(out_shape=(28, 28)),
], ids=["p2p-size", "resnet-size", "cycle-size", "sr-x3", "sr-x1", "sr-frac", "sr-aniso", "patch-small",
        "srd-small", "not-image"])
def test_wrong_sizes_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_wrong_sizes_through_build_nets_are_config_errors():
    with pytest.raises(ConfigError, match="srgan"):
        build("pix2pix", (1, 28, 28), (1, 14, 14))
    with pytest.raises(ConfigError, match="2 or 4"):
        build("srgan", (1, 30, 30), (1, 10, 10))


def test_generators_check_the_input_shape():
    G = UNetGenerator(width=4)
    with pytest.raises(ValueError, match="input image"):
        G(None, images(1, (3, 28, 28)))


def test_spectral_norm_options():
    from torch.nn.utils import parametrize
    for D in (PatchDiscriminator(width=4, sn=True), SRGANDiscriminator(width=4, sn=True),
              CycleDiscriminator(width=4, sn=True)):
        assert sum(parametrize.is_parametrized(m, "weight") for m in D.modules()) >= 3


def test_every_image_to_image_family_is_checked_here():
    # (multi-domain translation, StarGAN, has its own checks in test_stargan.py: G takes a domain too)
    i2i = {n for n, f in NETS.items() if TASKS.get(f.task).takes_images and f.task != "multidomain"}
    assert i2i == set(CASES), f"image-to-image families without cases here: {i2i - set(CASES)}"


def test_srresnet_residual_starts_near_bicubic():
    """With residual=True and a zeroed last conv, G(y) is exactly bicubic upsampling (clamped)."""
    import torch.nn.functional as F
    from ganforge.nets.srgan import SRResNetGenerator
    torch.manual_seed(0)
    G = SRResNetGenerator(out_shape=(1, 28, 28), cond_shape=(1, 7, 7), width=8, n_blocks=1, residual=True)
    torch.nn.init.zeros_(G.tail[0].weight)
    torch.nn.init.zeros_(G.tail[0].bias)
    y = torch.rand(2, 1, 7, 7) * 2 - 1
    want = F.interpolate(y, scale_factor=4, mode="bicubic", align_corners=False).clamp(-1, 1)
    assert torch.allclose(G(None, y), want, atol=1e-6)
