"""Tools on trained runs: class-conditional sampling, truncation, interpolation, synthetic
datasets, and their command-line forms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from ganforge import load
from ganforge.cli import main
from ganforge.config import resolve
from ganforge.interpolate import interpolation_frames, lerp, slerp
from ganforge.session import train

TINY_IMG = ("model.g.width=8", "model.d.width=8", "model.z_dim=8", "train.batch_size=8", "train.steps=2",
            "train.log_every=1", "train.sample_every=0", "train.ckpt_every=0", "train.progress=false",
            "train.threads=1", "train.device=cpu", "train.grid_size=8")


@pytest.fixture
def cond_run(runs_dir, labelled_dataset) -> Path:
    name = labelled_dataset()
    cfg = resolve("projection-dcgan", overrides=[*TINY_IMG, f"out={runs_dir}", f"data.name={name}"])
    return train(cfg, quiet=True)


@pytest.fixture
def uncond_run(runs_dir, image_dataset) -> Path:
    cfg = resolve("dcgan", overrides=[*TINY_IMG, f"out={runs_dir}", f"data.name={image_dataset()}"])
    return train(cfg, quiet=True)


def test_slerp_and_lerp_endpoints_and_norm():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(3, 16, generator=g), torch.randn(3, 16, generator=g)
    t = torch.linspace(0, 1, 5)
    for f in (slerp, lerp):
        path = f(z0, z1, t)  # (5, 3, 16)
        assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    # slerp between equal-norm vectors keeps the norm along the way
    z1n = z1 / z1.norm(dim=1, keepdim=True) * z0.norm(dim=1, keepdim=True)
    mid = slerp(z0, z1n, torch.tensor([0.5]))[0]
    assert torch.allclose(mid.norm(dim=1), z0.norm(dim=1), rtol=1e-4)


def test_class_sampling_uses_the_label(cond_run):
    g = load(cond_run)
    assert g.conditional and g.num_classes == 3
    a = g.sample(4, seed=1, labels=0)
    b = g.sample(4, seed=1, labels=2)
    assert a.shape == (4, 1, 28, 28) and not torch.equal(a, b)
    assert torch.equal(a, g.sample(4, seed=1, labels=0))
    with pytest.raises(ValueError, match="0..2"):
        g.sample(2, seed=0, labels=5)


def test_labels_refused_for_unconditional_models(uncond_run):
    with pytest.raises(ValueError, match="not class-conditional"):
        load(uncond_run).sample(2, seed=0, labels=1)


def test_interpolation_endpoints_equal_the_endpoint_samples(uncond_run):
    g = load(uncond_run)
    frames = interpolation_frames(g, steps=5, rows=2, seed=3)
    gen = torch.Generator().manual_seed(3)
    z0, z1 = g.latent(2, generator=gen), g.latent(2, generator=gen)
    assert torch.allclose(frames[:, 0], g(z0), atol=1e-5)
    assert torch.allclose(frames[:, -1], g(z1), atol=1e-5)


def test_class_interpolation_endpoints_are_the_two_classes(cond_run):
    g = load(cond_run)
    frames = interpolation_frames(g, steps=4, rows=2, seed=0, classes=(0, 2))
    z = g.latent(2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(frames[:, 0], g(z, torch.zeros(2, dtype=torch.long)), atol=1e-5)
    assert torch.allclose(frames[:, -1], g(z, torch.full((2,), 2)), atol=1e-5)


def test_cli_sample_class_grid_and_truncation(cond_run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", str(cond_run), "--n", "6", "--out", str(out)]) == 0
    with Image.open(out) as im:  # 3 rows (classes) of 2 samples, 28 px + 2 px padding
        assert im.size == (2 + 2 * 30, 2 + 3 * 30)
    assert main(["sample", str(cond_run), "--n", "4", "--class", "1", "--truncation", "0.5",
                 "--out", str(tmp_path / "one.png")]) == 0


def test_cli_class_on_unconditional_is_a_clean_error(uncond_run, capsys):
    assert main(["sample", str(uncond_run), "--class", "1"]) == 2
    assert "class-conditional" in capsys.readouterr().err


def test_cli_interpolate_writes_png_and_gif(cond_run, tmp_path):
    stem = tmp_path / "walk"
    assert main(["interpolate", str(cond_run), "--steps", "4", "--rows", "2", "--out", str(stem)]) == 0
    with Image.open(stem.with_suffix(".gif")) as gif:
        assert gif.n_frames == 4 + 2  # forwards and back
    assert stem.with_suffix(".png").is_file()
    assert main(["interpolate", str(cond_run), "--classes", "0,2", "--out", str(tmp_path / "c")]) == 0
    assert main(["interpolate", str(cond_run), "--classes", "0"]) == 2


def test_cli_synthesize_imagefolder_layout(cond_run, tmp_path):
    from torchvision.datasets import ImageFolder
    out = tmp_path / "synth"
    assert main(["synthesize", str(cond_run), "--per-class", "3", "--out", str(out)]) == 0
    ds = ImageFolder(str(out))
    assert len(ds) == 9 and len(ds.classes) == 3
    assert sorted(ds.targets) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_cli_synthesize_needs_a_conditional_model(uncond_run, tmp_path, capsys):
    assert main(["synthesize", str(uncond_run), "--per-class", "2", "--out", str(tmp_path / "s")]) == 2
    assert "class-conditional" in capsys.readouterr().err


def test_conditional_run_writes_a_class_by_sample_grid(cond_run):
    grids = sorted((cond_run / "samples").glob("*.png"))
    with Image.open(grids[-1]) as im:  # grid_size 8 -> 2 per class, one row per class
        assert im.size == (2 + 2 * 30, 2 + 3 * 30)
