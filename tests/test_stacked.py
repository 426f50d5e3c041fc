"""Stacked Fashion-MNIST: the data source (shapes, labels that match the channels, independent
channels, exact resume) on a tiny fake single-channel set, and the mode counter with a stub
classifier and, when the data and the shipped classifier are present, on real stacked images."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch

import ganforge.data.stacked as st
from ganforge.data import DATASETS, DataError, build_dataset
from ganforge.data.images import DEBIAN_FASHION_MNIST
from ganforge.metrics.modes import stacked_mode_metrics

N_FAKE = 20  # fake single images: image i is filled with the value i, its class is i % 10


def _fake_singles(n: int = N_FAKE, side: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, side, side).contiguous()
    return images, torch.arange(n) % 10


def _index_of(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) stacked fake images (uint8 or [-1, 1]) -> (B, 3) indices of the singles."""
    if x.dtype != torch.uint8:
        x = ((x + 1) * 127.5).round()
    return x[:, :, 0, 0].to(torch.int64)


@pytest.fixture
def fake_fmnist(monkeypatch):
    """Replace Fashion-MNIST by the fake singles; records the load_split calls."""
    calls = []

    def fake_load_split(name, split="test", *, root=None, image_size=0, channels=0, limit=0, download=False):
        calls.append(dict(name=name, split=split, image_size=image_size, channels=channels, limit=limit))
        images, labels = _fake_singles()
        return (images[:limit], labels[:limit]) if limit else (images, labels)

    monkeypatch.setattr(st, "load_split", fake_load_split)
    return calls


@pytest.fixture
def source(make_cfg, fake_fmnist):
    return build_dataset(make_cfg("data.name=stacked-fmnist", "seed=7"))


class StubClassifier:
    """Classifies a fake single (constant image of value i) as i % 10, like a perfect classifier."""

    num_classes = 10

    def __call__(self, x):
        assert x.shape[1] == 1
        idx = ((x[:, 0, 0, 0] + 1) * 127.5).round().to(torch.int64)
        probs = torch.nn.functional.one_hot(idx % 10, 10).float()
        return torch.zeros(len(x), 4), probs


# -- the data source -------------------------------------------------------------------------

def test_registered_with_shapes_and_labels(source, fake_fmnist):
    assert "stacked-fmnist" in DATASETS
    assert fake_fmnist == [dict(name="fashion-mnist", split="train", image_size=0, channels=1, limit=0)]
    assert isinstance(source, st.StackedSource)
    assert (source.shape, source.num_classes) == ((3, 28, 28), 1000)
    assert "stacked-fmnist" in source.description
    x, y = source.next(64)
    assert x.shape == (64, 3, 28, 28) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert y.shape == (64,) and y.dtype == torch.int64 and y.min() >= 0 and y.max() < 1000
    idx = _index_of(x)  # which single went into each channel
    assert torch.equal(y, idx[:, 0] % 10 * 100 + idx[:, 1] % 10 * 10 + idx[:, 2] % 10)
    assert torch.equal(st.decode_labels(y), idx % 10)
    u8, y8 = source.next_uint8(5)
    assert u8.dtype == torch.uint8 and u8.shape == (5, 3, 28, 28)
    assert torch.equal(y8, st.encode_triples(_index_of(u8) % 10))


def test_channels_are_independent_uniform_draws(source):
    x, y = source.next_uint8(20_000)
    idx = _index_of(x)  # (20000, 3)
    counts = torch.stack([torch.bincount(idx[:, c], minlength=N_FAKE) for c in range(3)])  # (3, 20)
    expected = 20_000 / N_FAKE  # 1000, binomial std ~31
    assert (counts - expected).abs().max() < 5 * math.sqrt(expected)
    # independence: the same single in two channels happens 1/N_FAKE of the time
    for a, b in ((0, 1), (0, 2), (1, 2)):
        same = (idx[:, a] == idx[:, b]).float().mean().item()
        assert abs(same - 1 / N_FAKE) < 0.01
    assert len(torch.unique(y)) == 1000  # all modes, ~20 samples each
    assert source.drawn == 20_000


def test_resume_continues_the_same_triples(make_cfg, fake_fmnist):
    cfg = make_cfg("data.name=stacked-fmnist", "seed=3")
    a = build_dataset(cfg)
    a.next(5)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)  # as in a checkpoint's state.pt
    expected = a.next(7)
    b = build_dataset(make_cfg("data.name=stacked-fmnist", "seed=99"))
    b.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    got = b.next(7)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert b.drawn == a.drawn == 12
    # same seed, same stream; another seed, another one
    c = build_dataset(cfg)
    c.next(5)
    assert torch.equal(c.next(7)[1], expected[1])
    assert not torch.equal(build_dataset(make_cfg("data.name=stacked-fmnist", "seed=4")).next(12)[1],
                           build_dataset(cfg).next(12)[1])


def test_config_options(make_cfg, fake_fmnist):
    src = build_dataset(make_cfg("data.name=stacked-fmnist", "data.limit=10"))
    assert fake_fmnist[-1]["limit"] == 10 and len(src) == 10
    assert _index_of(src.next_uint8(500)[0]).max() < 10
    build_dataset(make_cfg("data.name=stacked-fmnist", "data.channels=3"))
    with pytest.raises(DataError, match="channels"):
        build_dataset(make_cfg("data.name=stacked-fmnist", "data.channels=1"))


def test_rejects_bad_singles():
    images, labels = _fake_singles()
    with pytest.raises(DataError):
        st.StackedSource(images.expand(-1, 3, -1, -1), labels)
    with pytest.raises(DataError):
        st.StackedSource(images[:0], labels[:0])
    with pytest.raises(DataError):
        st.StackedSource(images, labels + 5)


def test_stack_random_is_seeded():
    images, labels = _fake_singles()
    x1, y1 = st.stack_random(images, labels, 50, seed=1)
    x2, y2 = st.stack_random(images, labels, 50, seed=1)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.shape == (50, 3, 28, 28)
    assert torch.equal(y1, st.encode_triples(_index_of(x1) % 10))


# -- the mode counter (stub classifier: no weights needed) -----------------------------------

def test_stacked_modes_with_a_perfect_stub():
    images, labels = _fake_singles()
    x, y = st.stack_random(images, labels, 3000, seed=0)
    x = x.float() / 127.5 - 1
    clf = StubClassifier()
    assert torch.equal(st.stacked_classes(x, clf, batch_size=512), st.decode_labels(y))
    expected = stacked_mode_metrics(st.decode_labels(y))
    assert st.stacked_modes(x, clf, batch_size=512) == expected
    # a sampler: n samples in batches, seeds passed through
    seen = []

    def sampler(k, seed):
        seen.append((k, seed))
        return st.stack_random(images, labels, k, seed=seed)[0].float() / 127.5 - 1

    out = st.stacked_modes(sampler, clf, n=2500, seed=2, batch_size=1000)
    assert seen == [(1000, 2_000_006), (1000, 2_000_007), (500, 2_000_008)]
    assert out["modes"] > 900 and set(out) == {"modes", "kl"}


def test_degenerate_set_has_one_mode_with_stub():
    images, labels = _fake_singles()
    x = st.stack(images, labels, torch.tensor([[3, 14, 5]]).expand(400, 3))[0]
    out = st.stacked_modes(x, StubClassifier())
    assert out["modes"] == 1 and out["kl"] == pytest.approx(math.log(1000))


# -- real data and the shipped classifier ----------------------------------------------------

@pytest.fixture(scope="module")
def fmnist_classifier():
    features = pytest.importorskip("ganforge.features")
    FmnistFeatures, WeightsError = features.FmnistFeatures, features.WeightsError
    if not (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not installed at {DEBIAN_FASHION_MNIST}")
    try:
        return FmnistFeatures()
    except WeightsError as e:
        pytest.skip(f"Fashion-MNIST classifier weights not available: {e}")


@pytest.fixture(scope="module")
def real_stacked(fmnist_classifier):
    return st.load_stacked_split("test", 2600, seed=0)


def test_real_stacked_images_cover_nearly_all_modes(fmnist_classifier, real_stacked):
    """2600 samples of 1000 equally likely modes: ~926 distinct triples expected
    (1000 (1 - e^-2.6)), plug-in KL ~0.21 (finite-sample bias); the classifier's errors
    (~10 % per channel) shift these only a little."""
    x, y = real_stacked
    classes = st.stacked_classes(x, fmnist_classifier)
    per_channel_acc = (classes == st.decode_labels(y)).float().mean(0)  # (3,): channel order kept
    assert (per_channel_acc > 0.85).all(), per_channel_acc
    out = st.stacked_modes(x.float() / 127.5 - 1, fmnist_classifier)
    truth = stacked_mode_metrics(st.decode_labels(y))
    assert out["modes"] > 900, (out, truth)
    assert out["kl"] < 0.35, (out, truth)


def test_real_degenerate_set_has_one_mode(fmnist_classifier, real_stacked):
    x, _ = real_stacked
    same = x[:1].expand(500, -1, -1, -1)
    out = st.stacked_modes(same, fmnist_classifier)
    assert out["modes"] == 1 and out["kl"] == pytest.approx(math.log(1000))
