"""The `ppl` / `ppl_end` evaluation metrics: hand values for linear toy generators (slerp in z,
lerp in w), the wiring of z and w on a tiny StyleGAN2, the distance's provenance, and LPIPS only
from local files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import ganforge.perceptual as perceptual
from ganforge.config import Config
from ganforge.errors import WeightsError
from ganforge.evaluation import evaluate
from ganforge.metrics.ppl import perceptual_path_length, sample_t
from ganforge.nets.stylegan2 import StyleGAN2Generator
from ganforge.trained import TrainedGenerator

pytestmark = pytest.mark.usefixtures("one_thread")

C = 0.5  # the toy generators' gain


class PixelDistance:
    description = "pixels: squared L2"

    def __call__(self, a, b):
        return (a - b).square().flatten(1).sum(1)


class LinearG(nn.Module):
    """z (4) -> C * z as a 1x2x2 image."""
    z_dim = 4

    def forward(self, z, y=None):
        return C * z.view(-1, 1, 2, 2)


class LinearStyleG(nn.Module):
    """A linear 'style-based' generator: w = z M^T, image = C * w (of the last layer) as 1x2x2."""
    z_dim, w_dim, num_ws = 4, 4, 3

    def __init__(self):
        super().__init__()
        self.register_buffer("M", torch.tensor([[1.0, 0, 0, 0], [0, 2, 0, 0], [1, 0, 3, 0], [0, 0, 0, 0.5]]))

    def mapping(self, z, y=None, psi=1.0, *, update_w_avg=True):
        return (z @ self.M.T)[:, None].repeat(1, self.num_ws, 1)

    def synthesize(self, ws, noise_mode=None, noise=None):
        return C * ws[:, -1].view(-1, 1, 2, 2)

    def forward(self, z, y=None, psi=1.0):
        return self.synthesize(self.mapping(z, y, psi))


def _model(net, arch="dcgan", shape=(1, 2, 2)):
    cfg = Config()
    cfg.model.arch, cfg.model.z_dim = arch, net.z_dim
    return TrainedGenerator(net, cfg, args={"out_shape": list(shape)})


def _draws(model, n, seed, sampling="full"):
    """The paths the metric documents: z0, z1, then t, from one seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    z0, z1 = model.latent(n, generator=gen), model.latent(n, generator=gen)
    return z0, z1, sample_t(n, sampling, generator=gen)


def _filtered(values: np.ndarray) -> float:
    lo, hi = np.quantile(values, 0.01, method="lower"), np.quantile(values, 0.99, method="higher")
    return values[(values >= lo) & (values <= hi)].mean()


@pytest.fixture
def pixel_distance(monkeypatch):
    monkeypatch.setattr(perceptual, "best_distance", lambda device="cpu": PixelDistance())


@pytest.mark.parametrize("metric", ["ppl", "ppl_end"])
def test_ppl_z_of_a_linear_generator_is_its_gain_times_the_angle_squared(pixel_distance, metric):
    model = _model(LinearG())
    out = evaluate(model, metrics=metric, n=300, seed=4)
    z0, z1, _ = _draws(model, 300, 4)
    # slerp moves at angular speed theta on the unit sphere; the metric rescales to the rms norm s,
    # and G multiplies by C: d / eps^2 = C^2 s^2 theta^2 at every t (also at the end points)
    s2 = torch.cat([z0, z1]).double().square().sum(1).mean().item()
    a, b = (v.double() / v.double().norm(dim=1, keepdim=True) for v in (z0, z1))
    theta = torch.acos((a * b).sum(1).clamp(-1, 1)).numpy()
    expected = _filtered(C ** 2 * s2 * theta ** 2)
    r = out["results"]
    assert r[f"{metric}_z"] == pytest.approx(expected, rel=2e-2)
    assert r[f"{metric}_paths"] == 300.0 and f"{metric}_w" not in r  # no w for a non-style generator
    assert out["provenance"]["ppl_distance"] == "pixels: squared L2"


def test_ppl_w_of_a_linear_style_generator_is_exact(pixel_distance):
    net = LinearStyleG()
    model = _model(net)
    assert model.style_based
    r = evaluate(model, metrics="ppl", n=200, seed=1)["results"]
    z0, z1, _ = _draws(model, 200, 1)
    # lerp in w: the image moves at the constant velocity C (z1 - z0) M^T
    expected = _filtered((C ** 2 * ((z1 - z0).double() @ net.M.double().T).square().sum(1)).numpy())
    assert r["ppl_w"] == pytest.approx(expected, rel=2e-2)
    assert r["ppl_z"] > 0 and r["ppl_paths"] == 200.0


def test_tiny_stylegan2_z_and_w_follow_their_paths():
    torch.manual_seed(0)
    net = StyleGAN2Generator(z_dim=8, out_shape=(1, 28, 28), w_dim=8, map_depth=1, channel_base=128,
                             channel_max=8, noise_mode="random").eval()
    model = _model(net, arch="stylegan2", shape=(1, 28, 28))
    out = evaluate(model, metrics="ppl", n=40, seed=2)
    r, dist = out["results"], perceptual.best_distance()
    assert out["provenance"]["ppl_distance"] == dist.description
    z0, z1, t = _draws(model, 40, 2)
    with torch.no_grad():
        def synth(w):
            return net.synthesize(w[:, None].expand(-1, net.num_ws, -1), noise_mode="const")
        ref_w = perceptual_path_length(generate=synth, distance=dist, a=net.mapping(z0)[:, 0],
                                       b=net.mapping(z1)[:, 0], t=t, space="w")
        ref_z = perceptual_path_length(generate=lambda z: synth(net.mapping(z)[:, 0]), distance=dist, a=z0, b=z1,
                                       t=t, space="z")
    assert r["ppl_w"] == pytest.approx(ref_w["ppl"], rel=1e-4)
    assert r["ppl_z"] == pytest.approx(ref_z["ppl"], rel=1e-4)
    assert r["ppl_z"] != pytest.approx(r["ppl_w"], rel=1e-2)  # two different measurements
    # the constant noise keeps the measurement free of noise: the same seed gives the same value
    assert evaluate(model, metrics="ppl", n=40, seed=2)["results"]["ppl_w"] == r["ppl_w"]


def test_feature_distance_by_hand():
    d = perceptual.FeatureDistance()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    y = torch.rand(3, 1, 28, 28) * 2 - 1
    f, _ = d.extractor(x)
    g, _ = d.extractor(y)
    expected = (f / f.norm(dim=1, keepdim=True) - g / g.norm(dim=1, keepdim=True)).square().sum(1)
    torch.testing.assert_close(d(x, y), expected, rtol=1e-5, atol=1e-6)
    assert d(x, x).abs().max() == 0 and "fmnist-features" in d.description
    x.requires_grad_(True)
    d(x, y).sum().backward()  # differentiable in the images (projection needs it)
    assert x.grad.abs().sum() > 0


def test_lpips_only_from_local_files(tmp_path, monkeypatch):
    pytest.importorskip("lpips")
    import torchvision
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    backbone = perceptual._backbone_file("alex")
    assert str(backbone).startswith(str(tmp_path))
    with pytest.raises(WeightsError, match="never downloads"):
        perceptual.LpipsDistance("alex")
    assert isinstance(perceptual.best_distance(), perceptual.FeatureDistance)  # the documented fallback
    # with a backbone checkpoint on disk (random weights here), LPIPS is built from it
    backbone.parent.mkdir(parents=True)
    state = torchvision.models.alexnet().state_dict()
    torch.save(state, backbone)
    d = perceptual.best_distance()
    assert isinstance(d, perceptual.LpipsDistance) and d.description.startswith("lpips-alex")
    torch.testing.assert_close(d.model.net.slice1[0].weight, state["features.0.weight"])
    x, y = torch.rand(2, 1, 28, 28) * 2 - 1, torch.rand(2, 1, 28, 28) * 2 - 1
    assert d(x, x).abs().max() < 1e-6 and (d(x, y) > 0).all()


def test_ppl_needs_a_latent_space():
    from ganforge.errors import EvalError
    from ganforge.evaluation import parse_metrics
    model = _model(LinearG(), arch="pix2pix", shape=(1, 2, 2))  # an image-to-image model
    with pytest.raises(EvalError, match="metric 'ppl' needs a noise-to-sample model"):
        parse_metrics("ppl", model)
    assert parse_metrics("ppl_end", _model(LinearG()))[0].name == "ppl_end"
