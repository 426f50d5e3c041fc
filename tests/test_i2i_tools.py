"""Image-to-image runs end to end: training a few steps of each preset, the before/after grid,
`ganforge translate` / `upscale` on PNG files, and evaluation against the test split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from ganforge import load
from ganforge.cli import main
from ganforge.config import resolve
from ganforge.data import images as gi
from ganforge.session import train

needs_fmnist = pytest.mark.skipif(not (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                  reason="Debian package dataset-fashion-mnist not installed")

TINY = ("model.g.width=8", "model.d.width=8", "train.batch_size=4", "train.steps=2", "data.limit=16",
        "train.log_every=1", "train.sample_every=0", "train.ckpt_every=0", "train.progress=false",
        "train.threads=1", "train.device=cpu", "loss.terms.feature=0")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    if not (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    out = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    extra = {"cyclegan": ["model.g.n_blocks=1"], "srgan": ["model.g.n_blocks=1"]}
    return {p: train(resolve(p, overrides=[*TINY, f"out={out}", *extra.get(p, [])]), quiet=True)
            for p in ("pix2pix", "srgan", "cyclegan")}


def _png(path: Path, size: int, value: int = 128) -> Path:
    Image.new("L", (size, size), value).save(path)
    return path


@needs_fmnist
def test_before_after_grid_written(runs):
    for preset, run in runs.items():
        grids = sorted((run / "samples").glob("*.png"))
        assert grids, preset
        with Image.open(grids[-1]) as im:
            assert im.size[0] > 28 * 6  # input | output | target (pix2pix), A | A->B | back (cycle)


@needs_fmnist
def test_translate_round_trips_a_png(runs, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _png(src / "shirt.png", 28)
    _png(src / "big.png", 56, 30)  # other sizes are resized to the model's input
    out = tmp_path / "out"
    assert main(["translate", str(runs["pix2pix"]), str(src), "--out", str(out)]) == 0
    for name in ("shirt.png", "big.png"):
        with Image.open(out / name) as im:
            assert im.size == (28, 28)
    assert main(["translate", str(runs["cyclegan"]), str(src / "shirt.png"), "--direction", "ba",
                 "--out", str(out / "ba"), "--side-by-side"]) == 0
    with Image.open(out / "ba" / "shirt.png") as im:
        assert im.size == (56, 28)


@needs_fmnist
def test_upscale_x4_writes_28px_from_7px(runs, tmp_path):
    src = _png(tmp_path / "tiny.png", 7)
    out = tmp_path / "up"
    assert main(["upscale", str(runs["srgan"]), str(src), "--out", str(out)]) == 0
    with Image.open(out / "tiny.png") as im:
        assert im.size == (28, 28)


@needs_fmnist
def test_wrong_tool_for_the_model_is_a_clean_error(runs, tmp_path, capsys):
    src = _png(tmp_path / "a.png", 28)
    assert main(["upscale", str(runs["pix2pix"]), str(src), "--out", str(tmp_path / "o")]) == 2
    assert "not a super-resolution model" in capsys.readouterr().err
    assert main(["translate", str(runs["pix2pix"]), str(src), "--direction", "ba", "--out", str(tmp_path / "o")]) == 2
    assert main(["translate", str(runs["pix2pix"]), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == 2
    assert main(["sample", str(runs["pix2pix"])]) == 2


@needs_fmnist
def test_eval_of_image_to_image_runs(runs):
    from ganforge.evaluation import evaluate_run
    p = evaluate_run(runs["pix2pix"], n=40, features="fmnist")["results"]
    assert {"l1", "psnr", "ssim", "fid"} <= set(p) and 0 < p["l1"] < 2
    s = evaluate_run(runs["srgan"], n=40, features="fmnist")["results"]
    assert {"psnr", "bicubic_psnr", "bicubic_ssim"} <= set(s)
    assert s["bicubic_psnr"] > 10  # bicubic from 7 px is poor but far from noise
    c = evaluate_run(runs["cyclegan"], n=40, features="fmnist")["results"]
    assert {"fid", "cycle_l1"} <= set(c) and "psnr" not in c


def test_translation_metrics_by_hand():
    """A "model" that adds 0.1 to every pixel, evaluated through the real metric registry."""
    from ganforge.config import Config
    from ganforge.data import Split
    from ganforge.evaluation import EvalContext, parse_metrics
    from ganforge.tasks import TASKS

    class Shift:
        task, cfg, data_shape, conditional = TASKS.get("paired"), Config(), (1, 8, 8), False
        args = {"out_shape": [1, 8, 8], "cond_shape": [1, 8, 8]}

        def translate(self, y, direction="ab"):
            return y + 0.1

    inputs = torch.full((3, 1, 8, 8), 100, dtype=torch.uint8)
    ctx = EvalContext(Shift(), n=3, ref="fmnist-edges:test")
    ctx._cache["split"] = Split(inputs.clone(), None, inputs)
    r = {}
    for m in parse_metrics("l1,psnr,ssim", Shift()):
        r.update(m.compute(ctx))
    assert r["l1"] == pytest.approx(0.1, abs=1e-6)
    assert r["psnr"] == pytest.approx(10 * torch.log10(torch.tensor(4 / 0.01)).item(), abs=1e-3)
    assert 0.9 < r["ssim"] < 1.0
