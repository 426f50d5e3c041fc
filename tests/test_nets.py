"""Network families: one shared set of checks (a tester mixin) run for every registered family.

Each family gets a ``Test<Family>(NetFamilyChecks)`` class naming the shapes it must support and
the shapes it must refuse; a test below fails when a family is registered without one. The
checks: output shapes, tanh range for images, one optimizer step moves G and D, safetensors
round trip, seeded determinism, every initialisation, spectral normalisation. Initialisation
statistics and latent distributions are checked against their definitions.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrize

from conftest import TINY_NET_KWARGS
from ganforge.checkpoint import flatten, unflatten
from ganforge.config import ConfigError, ModelConfig
from ganforge.tasks import TASKS
from ganforge.nets import INITS, LATENTS, NETS, build_nets, sample_latent

pytestmark = pytest.mark.usefixtures("one_thread")

Z_DIM = 8
B = 4


def _kind(shape) -> str:
    return "vector" if len(shape) == 1 else "image"


def _shape_id(shape) -> str:
    return "x".join(map(str, shape))


def pytest_generate_tests(metafunc):
    cls = metafunc.cls
    if cls is None:
        return
    if "shape" in metafunc.fixturenames:
        metafunc.parametrize("shape", cls.shapes, ids=_shape_id)
    if "bad_shape" in metafunc.fixturenames:
        metafunc.parametrize("bad_shape", cls.rejected_shapes or [None], ids=lambda s: _shape_id(s) if s else "none")
    if "init" in metafunc.fixturenames:
        metafunc.parametrize("init", INITS.keys())


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _weight_layers(module: nn.Module):
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            yield m


class NetFamilyChecks:
    """The checks every network family must pass. Subclasses set the class attributes."""

    arch: str = ""
    shapes: tuple = ()  # per-sample data shapes the family must support
    rejected_shapes: tuple = ()  # shapes build_nets must refuse with a ConfigError

    def build(self, shape, *, seed: int = 0, init: str = "normal", gain: float = 0.02,
              g: dict | None = None, d: dict | None = None):
        g_kw, d_kw = TINY_NET_KWARGS.get(self.arch, ({}, {}))
        cfg = ModelConfig(arch=self.arch, z_dim=Z_DIM, init=init, init_gain=gain,
                          g={**g_kw, **(g or {})}, d={**d_kw, **(d or {})})
        torch.manual_seed(seed)
        G, D, _, _ = build_nets(cfg, shape)
        return G, D

    def d_supports_sn(self) -> bool:
        return "sn" in inspect.signature(NETS.get(self.arch).discriminator.__init__).parameters

    # -- shapes and ranges ------------------------------------------------------------------

    def test_output_shapes(self, shape):
        G, D = self.build(shape)
        z = torch.randn(B, Z_DIM)
        x = G(z)
        assert x.shape == (B, *shape)
        assert x.dtype == torch.float32 and torch.isfinite(x).all()
        assert D(x).shape == (B,)
        assert D(torch.randn(B, *shape)).shape == (B,)
        G.eval(), D.eval()  # sampling one at a time must work too (BN uses running stats)
        with torch.no_grad():
            assert G(torch.randn(1, Z_DIM)).shape == (1, *shape)
            assert D(torch.randn(1, *shape)).shape == (1,)

    def test_output_range(self, shape):
        # a large init gain drives the last pre-activation far outside [-1, 1]
        G, _ = self.build(shape, gain=1.0)
        with torch.no_grad():
            x = G(5 * torch.randn(64, Z_DIM))
        if _kind(shape) == "image":  # tanh: inside [-1, 1] and saturating
            assert x.abs().max() <= 1.0
            assert x.abs().max() > 0.99
        else:  # vectors (toy data up to +-4) must not be squashed
            assert x.abs().max() > 1.0

    # -- training --------------------------------------------------------------------------

    def test_one_step_changes_parameters(self, shape):
        G, D = self.build(shape, gain=0.2)
        opt_g = torch.optim.Adam(G.parameters(), lr=1e-2)
        opt_d = torch.optim.Adam(D.parameters(), lr=1e-2)
        real = torch.randn(B, *shape).clamp(-1, 1)

        g0, d0 = _state(G), [p.detach().clone() for p in D.parameters()]
        # the non-saturating loss (a Wasserstein loss would give D's last bias a zero gradient)
        fake = G(torch.randn(B, Z_DIM)).detach()
        loss_d = nn.functional.softplus(-D(real)).mean() + nn.functional.softplus(D(fake)).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        self._assert_moved(D, d0)
        assert all(torch.equal(p, g0[k]) for k, p in G.named_parameters()), "a D step changed G's weights"

        g0 = [p.detach().clone() for p in G.parameters()]
        d1 = _state(D)
        loss_g = nn.functional.softplus(-D(G(torch.randn(B, Z_DIM)))).mean()
        opt_g.zero_grad()
        D.requires_grad_(False)
        loss_g.backward()
        opt_g.step()
        self._assert_moved(G, g0)
        assert all(torch.equal(p, d1[k]) for k, p in D.named_parameters()), "a G step changed D's weights"

    @staticmethod
    def _assert_moved(net: nn.Module, before: list[torch.Tensor]) -> None:
        params = list(net.parameters())
        assert params, "no parameters"
        for p, p0 in zip(params, before):
            assert p.grad is not None, "a parameter got no gradient (unused layer?)"
            assert torch.isfinite(p).all()
            if p.grad.abs().sum() > 0:
                assert not torch.equal(p, p0), "a parameter with a gradient did not move"
        # gradients reach both ends of the network
        assert not torch.equal(params[0], before[0])
        assert not torch.equal(params[-1], before[-1])

    def test_safetensors_round_trip(self, shape, tmp_path):
        kw = {"sn": True} if self.d_supports_sn() else {}
        G, D = self.build(shape, seed=0, d=kw)
        G(torch.randn(B, Z_DIM)), D(torch.randn(B, *shape))  # move BN running stats / SN vectors
        path = tmp_path / "nets.safetensors"
        save_file(flatten({"G": G.state_dict(), "D": D.state_dict()}), str(path))

        G2, D2 = self.build(shape, seed=1, d=kw)
        for net in (G, D, G2, D2):
            net.eval()
        z, x = torch.randn(B, Z_DIM), torch.randn(B, *shape)
        with torch.no_grad():
            assert not torch.equal(G(z), G2(z)), "differently seeded nets agree: the check is vacuous"
            nets = unflatten(load_file(str(path)))
            G2.load_state_dict(nets["G"])
            D2.load_state_dict(nets["D"])
            assert torch.equal(G(z), G2(z))
            assert torch.equal(D(x), D2(x))

    def test_same_seed_same_init(self, shape):
        a, b, c = self.build(shape, seed=3), self.build(shape, seed=3), self.build(shape, seed=4)
        for i in range(2):
            sa, sb, sc = a[i].state_dict(), b[i].state_dict(), c[i].state_dict()
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
            assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())

    # -- initialisations --------------------------------------------------------------------

    def test_every_init_builds_finite_nets(self, init):
        shape = self.shapes[0]
        G, D = self.build(shape, init=init, gain=0.5)
        for net in (G, D):
            assert all(torch.isfinite(v).all() for v in net.state_dict().values() if v.is_floating_point())
        with torch.no_grad():
            assert torch.isfinite(D(G(torch.randn(B, Z_DIM)))).all()
        if init != "default":  # our inits zero every bias
            for m in _weight_layers(G):
                assert m.bias is None or not m.bias.any()

    # -- spectral normalisation -------------------------------------------------------------

    def test_spectral_norm_bounds_each_d_weight(self, shape):
        if not self.d_supports_sn():
            pytest.skip(f"{self.arch} D has no sn option")
        _, D = self.build(shape, d={"sn": True})
        _, D_plain = self.build(shape, d={"sn": False})
        x = torch.randn(8, *shape)
        D.train()
        with torch.no_grad():
            for _ in range(30):  # one power iteration per forward pass in train mode
                D(x)
        D.eval()  # reading .weight in eval mode does not iterate further
        sigmas = [torch.linalg.matrix_norm(m.weight.detach().flatten(1), 2).item()
                  for m in D.modules() if parametrize.is_parametrized(m, "weight")]
        assert len(sigmas) >= 2, "sn=True left the layers unnormalised"
        assert all(abs(s - 1.0) < 0.05 for s in sigmas), sigmas
        plain = [torch.linalg.matrix_norm(m.weight.detach().flatten(1), 2).item() for m in _weight_layers(D_plain)]
        assert any(abs(s - 1.0) > 0.2 for s in plain), "without sn the weights are already normalised: vacuous"

    # -- refusals ----------------------------------------------------------------------------

    def test_rejected_shapes(self, bad_shape):
        if bad_shape is None:
            pytest.skip(f"{self.arch} supports every shape tried")
        with pytest.raises(ConfigError):
            self.build(bad_shape)


class TestMLP(NetFamilyChecks):
    arch = "mlp"
    shapes = ((2,), (1, 28, 28), (3, 32, 32), (1, 64, 64))


class TestDCGAN(NetFamilyChecks):
    arch = "dcgan"
    shapes = ((1, 28, 28), (3, 32, 32), (1, 64, 64), (3, 32, 16), (1, 28, 56))  # HxW: the longer side a multiple
    rejected_shapes = ((2,), (1, 30, 30), (3, 48, 64))  # 48 = 3 * 16 is no 4 * 2^n or 7 * 2^n


class TestResNet(NetFamilyChecks):
    arch = "resnet"
    shapes = ((1, 28, 28), (3, 32, 32), (1, 64, 64))
    rejected_shapes = ((2,), (1, 30, 30), (3, 32, 16))


class TestBigGAN(NetFamilyChecks):
    arch = "biggan"
    shapes = ((1, 28, 28), (3, 32, 32), (1, 64, 64))
    rejected_shapes = ((2,), (1, 30, 30), (3, 32, 16))


def _all_subclasses(cls) -> set:
    return {c for s in cls.__subclasses__() for c in {s, *_all_subclasses(s)}}


def test_every_registered_family_has_checks():
    """Noise-to-image families share these checks; the families of other tasks are checked in
    their own files: image-to-image ones in test_i2i_nets.py (their G takes an image, their D may
    return a patch map), sequence nets in test_sequences.py, the semi-supervised D in test_semi.py."""
    import test_sagan  # noqa: F401  (families whose checks live in their own files)
    import test_stylegan2  # noqa: F401
    tested = {cls.arch for cls in _all_subclasses(NetFamilyChecks)}
    other = {n for n, f in NETS.items() if f.task != "generate"}
    assert set(NETS.keys()) - other == tested, f"families without a NetFamilyChecks subclass: {set(NETS.keys()) - other - tested}"


def test_dcgan_refuses_vectors_and_points_to_mlp():
    cfg = ModelConfig(arch="dcgan", z_dim=Z_DIM, g={"width": 8}, d={"width": 8})
    with pytest.raises(ConfigError, match="mlp"):
        build_nets(cfg, (2,))


# -- initialisation statistics (on nets large enough to estimate them) ---------------------------

def _big_nets(arch: str, init: str, gain: float, seed: int = 0):
    shape = (2,) if arch == "mlp" else (3, 64, 64)
    cfg = ModelConfig(arch=arch, z_dim=100, init=init, init_gain=gain)  # default widths (256 / 64)
    torch.manual_seed(seed)
    G, D, _, _ = build_nets(cfg, shape)
    return G, D


def _fans(w: torch.Tensor) -> tuple[int, int]:
    """PyTorch's convention: fan_in = size(1) * receptive field, fan_out = size(0) * receptive field."""
    rf = math.prod(w.shape[2:]) if w.dim() > 2 else 1
    return w.shape[1] * rf, w.shape[0] * rf


def _big_weights(G, D, min_numel: int = 4000):
    ws = [m.weight.detach() for net in (G, D) for m in _weight_layers(net) if m.weight.numel() >= min_numel]
    assert len(ws) >= 3
    return ws


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_normal_init_std_and_bn_scales(arch):
    G, D = _big_nets(arch, "normal", 0.02)
    for w in _big_weights(G, D):
        assert abs(w.std().item() - 0.02) < 0.002, w.shape
        assert abs(w.mean().item()) < 0.002
    bn = [m for net in (G, D) for m in net.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert bn, "no batch norm layers to check"
    scales = torch.cat([m.weight.detach() for m in bn])
    assert scales.numel() >= 500
    assert abs(scales.mean().item() - 1.0) < 0.005  # BN scales ~ N(1, 0.02) (DCGAN)
    assert abs(scales.std().item() - 0.02) < 0.004
    assert all(not m.bias.any() for m in bn)
    for net in (G, D):
        for m in _weight_layers(net):
            assert m.bias is None or not m.bias.any()


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_uniform_init_bounds(arch):
    G, D = _big_nets(arch, "uniform", 0.05)
    for w in _big_weights(G, D):
        assert w.abs().max() <= 0.05
        assert w.abs().max() > 0.049
        assert abs(w.std().item() - 0.05 / math.sqrt(3)) < 0.003


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_xavier_init_std(arch):
    G, D = _big_nets(arch, "xavier", 1.0)
    for w in _big_weights(G, D):
        fan_in, fan_out = _fans(w)
        expected = math.sqrt(2.0 / (fan_in + fan_out))  # Glorot & Bengio 2010, uniform variant
        assert abs(w.std().item() / expected - 1) < 0.1, w.shape
        assert w.abs().max() <= math.sqrt(3) * expected * 1.0001


@pytest.mark.parametrize("init", ["kaiming", "he"])
def test_kaiming_init_std(init):
    G, D = _big_nets("dcgan", init, 1.0)
    for w in _big_weights(G, D):
        fan_in, _ = _fans(w)
        expected = math.sqrt(2.0 / (1 + 0.2 ** 2)) / math.sqrt(fan_in)  # He et al. 2015, LeakyReLU 0.2
        assert abs(w.std().item() / expected - 1) < 0.1, w.shape


def test_orthogonal_init_rows_or_columns_are_orthonormal():
    G, D = _big_nets("mlp", "orthogonal", 1.5)
    checked = 0
    for net in (G, D):
        for m in _weight_layers(net):
            w = m.weight.detach().flatten(1).double()
            gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
            assert torch.allclose(gram, 1.5 ** 2 * torch.eye(gram.shape[0], dtype=torch.float64), atol=1e-4)
            checked += 1
    assert checked >= 4


def test_default_init_keeps_pytorch_defaults():
    G, D = _big_nets("mlp", "default", 0.02)
    linears = list(_weight_layers(D))
    assert any(m.bias.any() for m in linears)  # PyTorch draws biases; our inits zero them
    for m in linears:
        bound = 1 / math.sqrt(m.in_features)  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert m.weight.abs().max() <= bound


# -- latent distributions -----------------------------------------------------------------------

def test_latents_are_the_documented_distributions():
    assert set(LATENTS) == {"normal", "uniform"}
    g = torch.Generator().manual_seed(0)
    u = sample_latent("uniform", 20000, 8, generator=g)
    assert u.shape == (20000, 8)
    assert u.min() >= -1 and u.max() <= 1
    assert u.min() < -0.999 and u.max() > 0.999
    assert abs(u.mean().item()) < 0.01
    assert abs(u.std().item() - 1 / math.sqrt(3)) < 0.005
    n = sample_latent("normal", 20000, 8, generator=g)
    assert abs(n.mean().item()) < 0.01
    assert abs(n.std().item() - 1.0) < 0.01
    assert n.abs().max() > 3  # not clipped


def test_latents_are_seeded():
    for kind in LATENTS:
        a = sample_latent(kind, 5, 3, generator=torch.Generator().manual_seed(7))
        b = sample_latent(kind, 5, 3, generator=torch.Generator().manual_seed(7))
        c = sample_latent(kind, 5, 3, generator=torch.Generator().manual_seed(8))
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_unknown_latent_is_refused():
    with pytest.raises(ValueError, match="did you mean 'uniform'"):
        sample_latent("unifrom", 2, 2)
