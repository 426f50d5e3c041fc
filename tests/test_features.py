"""The fmnist feature extractor: verified loading, shapes, determinism, accuracy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ganforge.data import images as gi
from ganforge.features import (FEATURES, WEIGHTS_DIR, FeatureExtractor, FmnistFeatures, FmnistNet,
                               WeightsError, get_feature_extractor, sha256_file)

WEIGHTS = WEIGHTS_DIR / FmnistFeatures.WEIGHTS
RECORD = WEIGHTS.with_suffix(".json")


@pytest.fixture(scope="module")
def fx() -> FmnistFeatures:
    return FmnistFeatures()


def images(n: int, seed: int = 0, c: int = 1, s: int = 28) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, s, s, generator=g) * 2 - 1  # (n, c, s, s) in [-1, 1]


# -- loading ---------------------------------------------------------------------------------

def test_shipped_weights_and_record():
    record = json.loads(RECORD.read_text())
    assert record["sha256"] == sha256_file(WEIGHTS)
    assert WEIGHTS.stat().st_size < 2 * 1024 * 1024
    assert record["test_accuracy"] >= 0.92
    assert "train_fmnist_classifier.py" in record["command"]
    assert record["feature_dim"] == 128 and record["num_classes"] == 10


def test_registry_and_attributes(fx: FmnistFeatures):
    assert "fmnist" in FEATURES and FEATURES.get("fmnist") is FmnistFeatures
    assert isinstance(get_feature_extractor("fmnist"), FmnistFeatures)
    assert fx.name == "fmnist" and fx.dim == 128 and fx.num_classes == 10
    assert fx.sha256 == json.loads(RECORD.read_text())["sha256"]
    assert not any(p.requires_grad for p in fx.net.parameters()) and not fx.net.training


def test_registry_rejects_non_extractors():
    with pytest.raises(TypeError):
        FEATURES.register("not-an-extractor")(object)
    with pytest.raises(ValueError, match="already registered"):
        FEATURES.register("fmnist")(FmnistFeatures)


def test_checksum_mismatch_is_rejected(tmp_path: Path):
    bad = tmp_path / WEIGHTS.name
    shutil.copy(RECORD, tmp_path / RECORD.name)
    data = bytearray(WEIGHTS.read_bytes())
    data[-5] ^= 0x01  # one flipped bit in the last tensor
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        FmnistFeatures(weights=bad)
    shutil.copy(WEIGHTS, bad)  # an intact copy with its record loads
    assert FmnistFeatures(weights=bad).dim == 128


def test_missing_files_and_non_safetensors(tmp_path: Path):
    with pytest.raises(WeightsError, match="checksum record"):
        FmnistFeatures(weights=tmp_path / "nothing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="safetensors"):
        FmnistFeatures(weights=junk, sha256=sha256_file(junk))


# -- outputs ---------------------------------------------------------------------------------

def test_output_shapes_and_probabilities(fx: FmnistFeatures):
    f, p = fx(images(7))
    assert f.shape == (7, 128) and p.shape == (7, 10)
    assert f.dtype == torch.float32 and p.dtype == torch.float32
    assert (f >= 0).all()  # post-ReLU features
    assert torch.allclose(p.sum(1), torch.ones(7), atol=1e-5) and (p >= 0).all()
    assert torch.equal(p.argmax(1), fx.logits(images(7)).argmax(1))


def test_rgb_uint8_and_other_sizes(fx: FmnistFeatures):
    x = images(5)
    f1, _ = fx(x)
    f3, _ = fx(x.expand(-1, 3, -1, -1))  # RGB of equal channels = the gray image
    assert torch.allclose(f1, f3, atol=1e-6)
    u8 = ((x + 1) * 127.5).round().to(torch.uint8)
    fu, _ = fx(u8)
    assert torch.allclose(fu, fx(u8.float() / 127.5 - 1)[0])
    f64, p64 = fx(images(3, s=64, c=3))
    assert f64.shape == (3, 128) and p64.shape == (3, 10)
    with pytest.raises(ValueError, match="expected images"):
        fx(torch.zeros(2, 2, 28, 28))
    with pytest.raises(ValueError, match="expects"):
        FmnistNet()(torch.zeros(2, 1, 32, 32))


def test_extract_in_batches_matches_one_batch(fx: FmnistFeatures):
    x = images(23, seed=1)
    f, p = fx(x)
    fb, pb = fx.extract(x, batch_size=5, progress=True)
    assert fb.shape == (23, 128) and pb.shape == (23, 10) and fb.device.type == "cpu"
    assert torch.allclose(f, fb, atol=1e-5) and torch.allclose(p, pb, atol=1e-6)
    fe, pe = fx.extract(x[:0])
    assert fe.shape == (0, 128) and pe.shape == (0, 10)


def test_features_are_deterministic(fx: FmnistFeatures):
    x = images(16, seed=2)
    a = fx(x)
    b = fx(x)
    c = FmnistFeatures()(x)  # a fresh load
    for u, v, w in zip(a, b, c):
        assert torch.equal(u, v) and torch.equal(u, w)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(fx: FmnistFeatures):
    x = images(8, seed=3)
    fc, pc = FmnistFeatures(device="cuda")(x)
    assert fc.device.type == "cuda"
    assert torch.allclose(fc.cpu(), fx(x)[0], atol=1e-3)


def test_extractor_base_class_contract():
    assert issubclass(FmnistFeatures, FeatureExtractor)
    net = FmnistNet(widths=(8, 8, 8), feature_dim=16)
    f, logits = net.features_and_logits(torch.zeros(2, 1, 28, 28))
    assert f.shape == (2, 16) and logits.shape == (2, 10)


# -- accuracy on real data -------------------------------------------------------------------

@pytest.mark.skipif(not (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_accuracy_on_first_2000_test_images(fx: FmnistFeatures, tmp_path: Path):
    x, y = gi.load_split("fashion-mnist", "test", root=tmp_path, limit=2000)
    assert x.shape == (2000, 1, 28, 28)
    logits = torch.cat([fx.logits(x[i:i + 500]) for i in range(0, 2000, 500)])
    acc = (logits.argmax(1) == y).float().mean().item()
    assert acc >= 0.92, acc
