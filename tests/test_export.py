"""Exporting noise-to-image generators (unconditional, class-conditional): tiny runs trained
through the real API, exported to ONNX and TorchScript, checked against PyTorch by the exporter
and again here with fresh inputs; a corrupted export must fail verification and leave nothing
behind. Image-to-image models: test_export_i2i.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganforge import load
from ganforge import export as ex
from ganforge.cli import main
from ganforge.config import resolve
from ganforge.data import images as gi
from ganforge.session import train

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

ROOT = Path(__file__).resolve().parents[1]
TINY = ("model.g.width=8", "model.d.width=8", "train.batch_size=4", "train.steps=2", "data.limit=16",
        "train.log_every=1", "train.sample_every=0", "train.ckpt_every=0", "train.progress=false",
        "train.threads=1", "train.device=cpu")
RUNS = {"dcgan": ["model.z_dim=8", "train.ema=0.9"], "cgan": ["model.z_dim=8"]}


def train_runs(tmp_path_factory, runs: dict) -> dict[str, Path]:
    if not (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    out = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {p: train(resolve(p, overrides=[*TINY, f"out={out}", *extra]), quiet=True) for p, extra in runs.items()}
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return train_runs(tmp_path_factory, RUNS)


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory) -> dict:
    """(run, format) -> (path, exporter summary), exported once for the module."""
    out = tmp_path_factory.mktemp("exported")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {(p, fmt): (out / f"{p}.{suffix}", ex.export_generator(load(run), out / f"{p}.{suffix}", fmt))
                for p, run in runs.items() for fmt, suffix in (("onnx", "onnx"), ("torchscript", "pt"))}
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def _ort_run(path: Path, feed: dict) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {k: v.numpy() for k, v in feed.items()})[0]


def _meta(path: Path) -> dict:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_noise_models_export_in_both_formats_and_match_pytorch(runs, exported):
    for preset in ("dcgan", "cgan"):
        g = load(runs[preset])
        assert g.ema == (preset == "dcgan")  # EMA weights by default when the run kept them
        z = g.latent(5, seed=11)
        y = torch.tensor([0, 3, 9, 1, 1]) if g.conditional else None
        want = g(z, y)  # (5, 1, 28, 28) from PyTorch
        feed = {"z": z, **({"label": y} if y is not None else {})}

        path, res = exported[preset, "onnx"]
        assert res["opset"] == ex.DEFAULT_OPSET and res["max_diff"] <= ex.ATOL and res["batches"] == [1, 3]
        got = _ort_run(path, feed)  # a batch size the exporter never saw
        assert got.shape == (5, 1, 28, 28)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=0)
        meta = _meta(path)
        rec = json.loads(meta["ganforge"])
        assert meta["opset"] == str(ex.DEFAULT_OPSET) and rec["opset"] == ex.DEFAULT_OPSET
        assert rec["kind"] == ("conditional" if g.conditional else "noise") and rec["ema"] == g.ema
        assert [i["name"] for i in rec["inputs"]] == (["z", "label"] if g.conditional else ["z"])
        assert rec["z_dim"] == 8 and rec["latent"] == "normal"
        if g.conditional:
            assert rec["class_names"][9] == "Ankle boot" and rec["inputs"][1]["dtype"] == "int64"

        path, res = exported[preset, "torchscript"]
        assert res["max_diff"] <= ex.ATOL and res["opset"] is None
        extra = {"ganforge.json": ""}
        ts = torch.jit.load(str(path), _extra_files=extra)
        assert json.loads(extra["ganforge.json"])["kind"] == rec["kind"]
        torch.testing.assert_close(ts(z, y) if y is not None else ts(z), want, atol=1e-5, rtol=0)


def test_cli_export_records_the_opset_and_reports_the_check(runs, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(runs["dcgan"]), "--out", str(out), "--opset", "17", "--no-ema"]) == 0
    text = capsys.readouterr().out
    assert "opset 17" in text and "verified with onnxruntime" in text and "batch 1 and 3" in text
    assert _meta(out)["opset"] == "17"
    assert json.loads(_meta(out)["ganforge"])["ema"] is False
    # flags that do not fit the model or the format, and an unknown format, are one-line errors
    assert main(["export", str(runs["dcgan"]), "--out", str(tmp_path / "x.onnx"), "--direction", "ba"]) == 2
    assert main(["export", str(runs["dcgan"]), "--format", "torchscript", "--out", str(tmp_path / "x.pt"),
                 "--opset", "17"]) == 2
    assert main(["export", str(runs["dcgan"]), "--out", str(tmp_path / "x.bin")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("error: ") for e in err)
    assert "generates from noise" in err[0] and "--opset is for ONNX" in err[1] and "--format" in err[2]
    assert not list(tmp_path.glob("x.*"))


class _Shifted(nn.Module):
    """A wrong graph: the real one plus 0.01 everywhere."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, z, label):
        return self.inner(z, label) + 0.01


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_corrupted_export_fails_verification_and_leaves_no_file(runs, tmp_path, monkeypatch, capsys, fmt):
    g = load(runs["cgan"])
    if fmt == "onnx":
        real = ex._onnx_export
        monkeypatch.setattr(ex, "_onnx_export", lambda spec, path, opset: real(
            ex.ExportSpec(_Shifted(spec.module), spec.inputs, spec.output_shape, spec.kind), path, opset))
    else:
        real = ex._torchscript_export
        monkeypatch.setattr(ex, "_torchscript_export", lambda spec, path, meta: real(
            ex.ExportSpec(_Shifted(spec.module), spec.inputs, spec.output_shape, spec.kind), path, meta))
    out = tmp_path / "sub" / "model.bin"
    assert main(["export", str(runs["cgan"]), "--format", fmt, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.fullmatch(r"error: verification failed: the exported \w+ file differs from PyTorch by "
                                          r"up to 0\.01 at batch 1 \(tolerance 0\.0001\)", err[0]), err
    assert list(out.parent.iterdir()) == []  # no file, no temporary left
    if fmt == "torchscript":  # the library raises the same error
        with pytest.raises(ex.ExportError, match="differs from PyTorch by up to 0.01"):
            ex.export_generator(g, out, fmt)
        assert list(out.parent.iterdir()) == []


def test_a_failed_export_keeps_an_existing_file(runs, tmp_path, monkeypatch):
    out = tmp_path / "model.pt"
    out.write_bytes(b"previous")
    with pytest.raises(ex.ExportError, match="differs from PyTorch"):
        ex.export_generator(load(runs["dcgan"]), out, "torchscript", atol=-1.0)  # nothing can pass
    assert out.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_missing_onnx_packages_name_the_extra(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails
    assert main(["export", str(runs["dcgan"]), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install ganforge[export]" in err[0] and "onnxscript" in err[0]
    assert list(tmp_path.iterdir()) == []


class _StyleToy(nn.Module):
    """A stand-in for a style-based G: a mapping scaled towards its mean by psi (truncation)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 12)

    def forward(self, z, psi):
        w = self.lin(z)  # (B, 12)
        return torch.tanh(w.mean(0, keepdim=True) * 0 + w * psi).view(-1, 3, 2, 2)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_unbatched_scalar_input_exports_for_style_models(tmp_path, fmt):
    torch.manual_seed(0)
    spec = ex.ExportSpec(_StyleToy().eval(), (
        ex.ModelInput("z", torch.float32, (4,), "latent", lambda n, gen: torch.randn(n, 4, generator=gen)),
        ex.ModelInput("truncation", torch.float32, (), "psi", lambda n, gen: torch.tensor(0.7), batched=False)),
        (3, 2, 2), "style")
    res = ex.export_spec(spec, tmp_path / "s.bin", fmt)
    assert res["max_diff"] <= ex.ATOL and res["inputs"][1]["shape"] == []
    z = torch.randn(6, 4)
    want = spec.module(z, torch.tensor(0.5))
    if fmt == "onnx":
        got = torch.from_numpy(_ort_run(tmp_path / "s.bin", {"z": z, "truncation": torch.tensor(0.5)}))
    else:
        got = torch.jit.load(str(tmp_path / "s.bin"))(z, torch.tensor(0.5))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_example_script_samples_a_grid_without_ganforge(runs, exported, tmp_path):
    g = load(runs["cgan"])
    model = exported["cgan", "onnx"][0]
    png = tmp_path / "grid.png"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}  # the script must not need ganforge
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "onnx_sample.py"), str(model), "--out", str(png),
                        "--n", "4", "--seed", "5", "--label", "7"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    img = np.asarray(Image.open(png))
    assert img.shape == (2 + 2 * 30, 2 + 2 * 30)  # 2x2 grid of 28 px tiles with 2 px padding
    # the same z (numpy's generator, as in the script) through PyTorch gives the same pixels
    z = torch.from_numpy(np.random.default_rng(5).standard_normal((4, 8)).astype(np.float32))
    want = ((g(z, torch.full((4,), 7)).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    tiles = [img[2 + r * 30:2 + r * 30 + 28, 2 + c * 30:2 + c * 30 + 28] for r in range(2) for c in range(2)]
    assert max(int(np.abs(t.astype(int) - w.astype(int)).max()) for t, w in zip(tiles, want)) <= 1


def test_plain_copy_bakes_spectral_norm_and_leaves_the_original_working():
    from ganforge.nets import BigGANGenerator
    torch.manual_seed(0)
    net = BigGANGenerator(z_dim=12, out_shape=(1, 28, 28), num_classes=3, width=8, shared_dim=8).eval()  # SN in G
    z, y = torch.randn(2, 12), torch.tensor([0, 2])
    with torch.no_grad():
        want = net(z, y)
        for _ in range(2):  # a second copy must still work: the original's classes are untouched
            plain = ex._plain_copy(net)
            assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in plain.modules())
            torch.testing.assert_close(plain(z, y), want, atol=1e-6, rtol=0)
        assert torch.equal(net(z, y), want)
        assert any(torch.nn.utils.parametrize.is_parametrized(m) for m in net.modules())
