"""Exporting image-to-image generators (pix2pix, both CycleGAN directions) to ONNX and
TorchScript; the outputs of onnxruntime and torch.jit.load must match ``Generator.translate``."""

from __future__ import annotations

import pytest
import torch

from ganforge import export as ex
from ganforge import load
from ganforge.cli import main

from test_export import _ort_run, train_runs

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return train_runs(tmp_path_factory, {"pix2pix": ["model.g.depth=3"], "cyclegan": ["model.g.n_blocks=1"]})


def test_image_to_image_models_export_both_directions(runs, tmp_path, one_thread):
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    for preset, directions in (("pix2pix", ["ab"]), ("cyclegan", ["ab", "ba"])):
        g = load(runs[preset])
        for d in directions:
            want = g.translate(x, direction=d)
            for fmt, suffix in (("onnx", "onnx"), ("torchscript", "pt")):
                out = tmp_path / f"{preset}-{d}.{suffix}"
                res = ex.export_generator(g, out, fmt, direction=d if preset == "cyclegan" else None)
                assert res["max_diff"] <= ex.ATOL and res["kind"] == "image-to-image"
                assert res["inputs"][0]["name"] == "image" and res["output"] == ["batch", 1, 28, 28]
                got = torch.from_numpy(_ort_run(out, {"image": x})) if fmt == "onnx" else torch.jit.load(str(out))(x)
                torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    # the two CycleGAN directions are different nets, and each file holds its own
    assert not torch.allclose(g.translate(x, direction="ab"), g.translate(x, direction="ba"))


def test_ba_needs_a_cyclegan(runs, tmp_path, capsys):
    assert main(["export", str(runs["pix2pix"]), "--out", str(tmp_path / "x.pt"), "--direction", "ba"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'ba' direction" in err[0]
    assert list(tmp_path.iterdir()) == []
