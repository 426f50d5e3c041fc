"""A trained style-based generator through ganforge.load: seeded sampling covers its per-layer
noise, and truncation is psi in w space."""

from __future__ import annotations

import pytest
import torch

import ganforge
from ganforge.data import images as gi

pytestmark = pytest.mark.skipif(not (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                reason="Debian package dataset-fashion-mnist not installed")


@pytest.fixture(scope="module")
def style_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return ganforge.train("stylegan2", overrides=[
        f"out={out}", "data.limit=32", "train.batch_size=4", "train.steps=2", "train.progress=false",
        "train.threads=1", "model.g.w_dim=8", "model.g.map_depth=1", "model.g.channel_base=128",
        "model.g.channel_max=8", "model.d.channel_base=128", "model.d.channel_max=8"], quiet=True)


def test_same_seed_same_images_despite_random_noise(style_run):
    g = ganforge.load(style_run)
    assert g.net.noise_mode == "random" and g.style_based
    before = torch.get_rng_state()
    a, b = g.sample(6, seed=3), g.sample(6, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, g.sample(6, seed=4))
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is untouched


def test_truncation_is_psi_in_w(style_run):
    g = ganforge.load(style_run)
    g.net.noise_mode = "const"
    centre = g.sample(5, seed=0, truncation=0.0)  # psi = 0: every sample is the average w's image
    torch.testing.assert_close(centre, centre[:1].expand_as(centre))
    torch.testing.assert_close(g.sample(5, seed=0, truncation=1.0), g.sample(5, seed=0))
