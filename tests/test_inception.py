"""The FID InceptionV3 extractor: architecture (against torchvision's layout and torch-fidelity's
network), weight lookup order, SHA-256 and safe loading, preprocessing, outputs.

No real weights exist here, so a randomly initialised network (with BN statistics calibrated so
activations stay O(1)) saved to a temporary .pth stands in for them. A forward pass at 299x299
costs about a second on a busy 2-core CPU: the tests use at most 2 images per pass.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.inception import InceptionA, InceptionC, InceptionE

import ganforge.inception as inc
from ganforge.features import FEATURES, WeightsError
from ganforge.inception import (FID_WEIGHTS_NAME, FID_WEIGHTS_SHA256, FID_WEIGHTS_URL, WEIGHTS_ENV,
                                FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2,
                                FIDInceptionV3, InceptionFeatures, resolve_weights)

# torchvision.models.inception_v3(num_classes=1008, aux_logits=False): what pytorch-fid loads
# its weights into. Computed once by hand here; a change means the layout changed.
FID_INCEPTION_PARAMS = 23_850_960
FID_INCEPTION_TENSORS = 566  # state-dict entries, 94 of them BN num_batches_tracked


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _random_net(seed: int = 0) -> FIDInceptionV3:
    """A random FID Inception whose BN statistics come from one batch of small random images,
    so features are O(1) rather than vanishing through 40 layers."""
    torch.manual_seed(seed)
    net = FIDInceptionV3()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.momentum = 1.0  # running stats := this batch's stats
        torch.nn.init.uniform_(m.weight, 0.5, 1.5)
        torch.nn.init.uniform_(m.bias, -0.2, 0.2)
    with torch.no_grad():
        net.train().pool3(torch.rand(4, 3, 96, 96) * 2 - 1)
    for m in bns:
        m.momentum = 0.1
    return net.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> tuple[Path, str, dict]:
    """(path, sha256, state_dict) of random weights saved like an old pytorch-fid file: legacy
    (non-zip) serialisation, no BN num_batches_tracked entries."""
    state = {k: v for k, v in _random_net().state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path, _sha(path), state


@pytest.fixture(scope="module")
def fx(weights) -> InceptionFeatures:
    path, sha, _ = weights
    return InceptionFeatures(weights=path, sha256=sha)


@pytest.fixture
def no_sources(monkeypatch, tmp_path):
    """An empty torch hub dir, no environment override, and no network: returns the hub dir."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download without download=True")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return hub


# -- architecture ----------------------------------------------------------------------------

def test_layout_equals_torchvision_inception_v3_1008_without_aux():
    net = FIDInceptionV3()
    ref = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008,
                                          init_weights=False)
    ours, theirs = net.state_dict(), ref.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    assert len(ours) == FID_INCEPTION_TENSORS
    assert sum(p.numel() for p in net.parameters()) == FID_INCEPTION_PARAMS
    assert net.fc.weight.shape == (1008, 2048)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 94 and all(m.eps == 1e-3 for m in bns)
    kinds = {n: type(getattr(net, n)) for n in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6b", "Mixed_6e",
                                                 "Mixed_7b", "Mixed_7c")}
    assert kinds == {"Mixed_5b": FIDInceptionA, "Mixed_5c": FIDInceptionA, "Mixed_5d": FIDInceptionA,
                     "Mixed_6b": FIDInceptionC, "Mixed_6e": FIDInceptionC,
                     "Mixed_7b": FIDInceptionE_1, "Mixed_7c": FIDInceptionE_2}


@pytest.mark.parametrize("fid_cls, tv_cls, args", [
    (FIDInceptionA, InceptionA, (192, 32)),
    (FIDInceptionC, InceptionC, (768, 128)),
    (FIDInceptionE_1, InceptionE, (1280,)),
])
def test_avg_pool_branch_does_not_count_padding(fid_cls, tv_cls, args):
    """On a constant input TF's average pool is constant up to the border; torchvision's
    (count_include_pad=True) darkens the border. The pool branch is the block's last output."""
    torch.manual_seed(0)
    fid_block, tv_block = fid_cls(*args).eval(), tv_cls(*args).eval()
    tv_block.load_state_dict(fid_block.state_dict())
    x = torch.full((1, args[0], 5, 5), 0.7)
    with torch.no_grad():
        ours, theirs = fid_block._forward(x)[-1], tv_block._forward(x)[-1]
    assert torch.allclose(ours, ours[..., 2:3, 2:3].expand_as(ours), atol=1e-6)
    assert not torch.allclose(theirs, theirs[..., 2:3, 2:3].expand_as(theirs), atol=1e-3)
    # the other branches are torchvision's own
    with torch.no_grad():
        for a, b in zip(fid_block._forward(x)[:-1], tv_block._forward(x)[:-1]):
            torch.testing.assert_close(a, b)


def test_last_block_pools_with_max_and_the_one_before_with_avg():
    torch.manual_seed(0)
    x = torch.randn(1, 2048, 4, 4)
    e2, e1 = FIDInceptionE_2(2048).eval(), FIDInceptionE_1(2048).eval()
    e1.load_state_dict(e2.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(e2._forward(x)[-1], e2.branch_pool(F.max_pool2d(x, 3, 1, 1)))
        avg = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        torch.testing.assert_close(e1._forward(x)[-1], e1.branch_pool(avg))
        assert not torch.allclose(e2(x), e1(x))


def test_same_outputs_as_torch_fidelity_inception(weights, fx):
    """torch-fidelity's own InceptionV3 (an independent port of the same TF graph) loads our
    file unchanged and gives the same pool3 features and unbiased logits."""
    pytest.importorskip("torch_fidelity")
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path, _, _ = weights
    tf_net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                         feature_extractor_weights_path=str(path))
    x = torch.randint(0, 256, (1, 3, 299, 299), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        f_ref, logits_ref = tf_net(x)
        f = fx.net.pool3((x.float() - 128) / 128)  # torch-fidelity's own [-1, 1] mapping
    assert f.abs().mean() > 1e-2  # not a vanishing network: the comparison means something
    torch.testing.assert_close(f, f_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(f @ fx.net.fc.weight.T, logits_ref, rtol=1e-4, atol=1e-4)


# -- outputs and preprocessing ---------------------------------------------------------------

def test_features_and_probs(fx, weights):
    _, _, state = weights
    torch.testing.assert_close(fx.net.fc.weight, state["fc.weight"])
    torch.testing.assert_close(fx.net.Mixed_7c.branch_pool.bn.running_var,
                               state["Mixed_7c.branch_pool.bn.running_var"])
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    f, p = fx(x)
    assert f.shape == (2, 2048) and p.shape == (2, 1008)
    assert f.dtype == p.dtype == torch.float32
    assert torch.isfinite(f).all() and (p >= 0).all()
    torch.testing.assert_close(p.sum(1), torch.ones(2))
    # probs: softmax over all 1008 unbiased logits (torch-fidelity's IS feature)
    torch.testing.assert_close(p, (f @ fx.net.fc.weight.T).softmax(1))
    assert not torch.allclose(f[0], f[1])
    assert (fx.dim, fx.num_classes, fx.input_size, fx.input_channels) == (2048, 1008, 299, 3)


def test_preprocessing_is_pytorch_fids():
    """pytorch-fid: [0, 1] images, bilinear resize to 299 (align_corners=False, no antialias),
    then 2x - 1. Ours maps to [-1, 1] first; the results agree to float rounding."""
    ext = InceptionFeatures.__new__(InceptionFeatures)  # preprocessing needs no weights
    ext.device = torch.device("cpu")
    u8 = torch.randint(0, 256, (2, 3, 512, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ref = F.interpolate(u8.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    torch.testing.assert_close(ext.preprocess(u8), ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(ext.preprocess(u8.float() / 127.5 - 1), ref, rtol=0, atol=1e-5)
    gray = torch.rand(2, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(ext.preprocess(gray), ext.preprocess(gray.repeat(1, 3, 1, 1)))
    at_299 = torch.rand(1, 3, 299, 299) * 2 - 1
    assert torch.equal(ext.preprocess(at_299), at_299)
    with pytest.raises(ValueError):
        ext.preprocess(torch.rand(2, 4, 28, 28))


def test_grayscale_uint8_accepted(fx):
    g = torch.Generator().manual_seed(2)
    gray = torch.randint(0, 256, (1, 1, 28, 28), dtype=torch.uint8, generator=g)
    f, p = fx(gray)
    assert f.shape == (1, 2048) and p.shape == (1, 1008) and torch.isfinite(f).all()


# -- where the weights come from -------------------------------------------------------------

def test_lookup_order(no_sources, tmp_path, monkeypatch, weights):
    path, _, _ = weights
    hub_file = no_sources / "checkpoints" / FID_WEIGHTS_NAME
    hub_file.parent.mkdir(parents=True)
    hub_file.symlink_to(path)
    assert inc.default_weights_path() == hub_file
    assert resolve_weights() == hub_file
    env_file = tmp_path / "env.pth"
    env_file.symlink_to(path)
    monkeypatch.setenv(WEIGHTS_ENV, str(env_file))
    assert resolve_weights() == env_file
    assert resolve_weights(path) == path  # the argument wins
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "nope.pth"))  # an explicit path must exist
    with pytest.raises(WeightsError, match="nope.pth"):
        resolve_weights()


def test_loads_from_the_environment_variable(no_sources, tmp_path, monkeypatch):
    """A zip-format (current torch.save) file with the full state dict loads too."""
    net = FIDInceptionV3()
    path = tmp_path / "zip.pth"
    torch.save(net.state_dict(), path)
    monkeypatch.setenv(WEIGHTS_ENV, str(path))
    ext = FEATURES.get("inception")(sha256=_sha(path))
    assert ext.path == path and ext.sha256 == _sha(path)
    torch.testing.assert_close(ext.net.Conv2d_1a_3x3.conv.weight, net.Conv2d_1a_3x3.conv.weight)


def test_missing_offline_names_the_expected_path(no_sources):
    with pytest.raises(WeightsError) as e:
        InceptionFeatures()
    msg = str(e.value)
    assert str(no_sources / "checkpoints" / FID_WEIGHTS_NAME) in msg
    assert FID_WEIGHTS_SHA256 in msg and FID_WEIGHTS_URL in msg and WEIGHTS_ENV in msg
    assert not (no_sources / "checkpoints" / FID_WEIGHTS_NAME).exists()


def test_download_only_when_allowed(no_sources, monkeypatch, weights):
    path, sha, _ = weights
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        shutil.copyfile(path, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(WeightsError):
        InceptionFeatures(sha256=sha)
    assert calls == []
    ext = InceptionFeatures(sha256=sha, download=True)
    assert calls == [(FID_WEIGHTS_URL, FID_WEIGHTS_SHA256)]  # the full digest is checked
    assert ext.path == no_sources / "checkpoints" / FID_WEIGHTS_NAME


def test_download_failure_is_a_weights_error(no_sources, monkeypatch):
    def offline(url, dst, hash_prefix=None, progress=True):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError, match="could not download.*name resolution"):
        InceptionFeatures(download=True)


# -- verification and safe loading -----------------------------------------------------------

def test_wrong_digest_is_refused(weights):
    path, sha, _ = weights
    with pytest.raises(WeightsError, match="checksum mismatch"):
        InceptionFeatures(weights=path)  # pytorch-fid's digest: not this random file
    with pytest.raises(WeightsError, match="checksum mismatch"):
        InceptionFeatures(weights=path, sha256="0" * 64)


def test_corrupted_file_is_refused(weights, tmp_path):
    path, sha, _ = weights
    broken = tmp_path / "truncated.pth"
    broken.write_bytes(path.read_bytes()[: 1 << 20])
    with pytest.raises(WeightsError, match="checksum mismatch"):
        InceptionFeatures(weights=broken, sha256=sha)
    # even with its own (matching) digest, a truncated file is a WeightsError, not a crash
    with pytest.raises(WeightsError, match="refused to load"):
        InceptionFeatures(weights=broken, sha256=_sha(broken))


class _CreateMarker:
    """Unpickling this calls open(marker, "w"), creating the file: arbitrary code execution."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("fmt", ["pickle", "torch.save"])
def test_malicious_pickle_is_refused(tmp_path, fmt):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"fc.weight": torch.zeros(2), "x": _CreateMarker(marker)}
    if fmt == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
        # the payload is live: plain unpickling would run it
        probe = tmp_path / "probe"
        pickle.loads(pickle.dumps(_CreateMarker(probe))).close()
        assert probe.exists()
    else:
        torch.save(payload, path)
    with pytest.raises(WeightsError, match="refused to load"):
        InceptionFeatures(weights=path, sha256=_sha(path))  # digest matches: only the loader stands
    assert not marker.exists()


def test_files_that_do_not_fit_are_refused(tmp_path):
    cases = {
        "missing": {"fc.weight": torch.zeros(1008, 2048)},
        "shape": {**FIDInceptionV3().state_dict(), "fc.weight": torch.zeros(1000, 2048)},
        "not_a_dict": [torch.zeros(3)],
    }
    for name, obj in cases.items():
        path = tmp_path / f"{name}.pth"
        torch.save(obj, path)
        with pytest.raises(WeightsError):
            InceptionFeatures(weights=path, sha256=_sha(path))


def test_registered():
    assert FEATURES.get("inception") is InceptionFeatures
    assert "inception" in FEATURES.keys()
