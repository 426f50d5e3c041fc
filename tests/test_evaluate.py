"""Evaluation I/O: metric names, cached reference features with provenance, `ganforge eval`,
and evaluation during training (eval.every, best checkpoint)."""

from __future__ import annotations

import json

import pytest
import torch

from ganforge.cli import main
from ganforge.config import ConfigError
from ganforge.data import images as gi
from ganforge.config import Config
from ganforge.data import parse_ref
from ganforge.errors import DataError, EvalError
from ganforge.evaluation import METRICS, evaluate, parse_metrics, reference_features
from ganforge.tasks import TASKS
from ganforge.features import get_feature_extractor
from ganforge.metrics import fid_from_features

needs_fmnist = pytest.mark.skipif(not (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                  reason="Debian package dataset-fashion-mnist not installed")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GANFORGE_DATA", str(tmp_path / "data"))
    torch.set_num_threads(1)


class FakeModel:
    """Anything with a task, a config and ``sample(k, seed, labels)`` can be evaluated."""

    step, checkpoint, ema, data_shape = 0, None, False, (1, 28, 28)

    def __init__(self, sample, *, num_classes: int = 0):
        self.task = TASKS.get("generate")
        self.cfg = Config()
        self.cfg.model.conditional = num_classes > 0
        self.num_classes = num_classes
        self._sample = sample

    @property
    def conditional(self):
        return self.num_classes > 0

    def sample(self, n, seed=None, labels=None):
        return self._sample(n, seed) if labels is None else self._sample(n, seed, labels)


class FixedFeatures:
    """An evaluation context whose features are given (to check each metric against its maths)."""

    def __init__(self, real, fake, probs, seed=0):
        self.real, self.fake, self.probs, self.seed, self._cache = real, fake, probs, seed, {}

    def reference(self):
        return self.real, None, {}

    def fake_features(self):
        return self.fake, self.probs

    def _once(self, key, make):
        return self._cache.setdefault(key, make())


def test_metric_names_come_from_the_registry():
    assert [m.name for m in parse_metrics("fid,kid,pr,dc,is")] == ["fid", "kid", "pr", "dc", "is"]
    assert [m.name for m in parse_metrics(["pr", "pr"])] == ["pr"]  # asked twice, computed once
    assert {"fid", "kid", "pr", "dc", "is", "acc", "ifid", "modes", "l1", "psnr", "ssim", "cycle"} <= set(METRICS.keys())
    with pytest.raises(EvalError, match="did you mean 'fid'"):
        parse_metrics("fdi")
    with pytest.raises(EvalError):
        parse_metrics(" , ")
    assert parse_ref("fashion-mnist") == ("fashion-mnist", "test")
    assert parse_ref("fmnist-edges:train") == ("fmnist-edges", "train")
    with pytest.raises(DataError):
        parse_ref("fashion-mnist:validation")


def test_metrics_match_the_metric_functions():
    from ganforge.metrics import inception_score_from_probs, kid_from_features, prdc
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g) + 0.5
    probs = torch.softmax(torch.randn(300, 10, generator=g), 1)
    ctx = FixedFeatures(real, fake, probs)
    out = {}
    for m in parse_metrics("fid,kid,pr,dc,is"):
        out.update(m.compute(ctx))
    assert out["fid"] == pytest.approx(fid_from_features(real, fake), rel=1e-12)
    assert (out["kid_mean"], out["kid_std"]) == pytest.approx(kid_from_features(real, fake, subset_size=300, seed=0))
    ref = prdc(real, fake, nearest_k=5, pr_nearest_k=3)
    assert {k: out[k] for k in ref} == pytest.approx(ref)
    assert (out["is_mean"], out["is_std"]) == pytest.approx(inception_score_from_probs(probs, splits=10))


@needs_fmnist
def test_reference_features_are_cached_by_provenance(tmp_path):
    ext = get_feature_extractor("fmnist")
    f1, p1, prov1 = reference_features("fashion-mnist:test", ext, n=300)
    assert f1.shape == (300, ext.dim) and p1.shape == (300, 10)
    assert prov1["extractor_sha256"] == ext.sha256 and prov1["n"] == 300
    f2, _, prov2 = reference_features("fashion-mnist:test", ext, n=300)
    assert prov2["cache"] == prov1["cache"] and torch.equal(f1, f2)
    # another extractor checksum (e.g. retrained weights) never reuses that cache
    ext.sha256 = "0" * 64
    _, _, prov3 = reference_features("fashion-mnist:test", ext, n=300)
    assert prov3["cache"] != prov1["cache"]
    # a damaged cache file is recomputed, not trusted
    with open(prov1["cache"], "wb") as f:
        f.write(b"garbage")
    ext.sha256 = prov1["extractor_sha256"]
    f4, _, _ = reference_features("fashion-mnist:test", ext, n=300)
    assert torch.equal(f4, f1)


@needs_fmnist
def test_real_images_score_better_than_noise():
    ext = get_feature_extractor("fmnist")
    train_x, _ = gi.load_split("fashion-mnist", "train", limit=400)

    def real_sampler(k, seed):
        idx = torch.randint(0, len(train_x), (k,), generator=torch.Generator().manual_seed(seed))
        return train_x[idx].float().div(127.5).sub(1)

    def noise_sampler(k, seed):
        return torch.rand(k, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1

    kw = dict(metrics="fid,pr", n=400, ref="fashion-mnist:test", ref_n=400, extractor=ext, progress=False)
    real = evaluate(FakeModel(real_sampler), **kw)
    noise = evaluate(FakeModel(noise_sampler), **kw)
    assert real["results"]["fid"] < noise["results"]["fid"] / 5
    assert real["results"]["precision"] > 0.5
    prov = real["provenance"]
    assert prov["extractor"] == "fmnist" and prov["n"] == 400 and prov["reference_n"] == 400
    assert prov["torch"] == torch.__version__


@needs_fmnist
def test_eval_command_and_periodic_eval(tmp_path, capsys):
    out = tmp_path / "runs"
    rc = main(["train", "dcgan", "--set", "data.name=fashion-mnist", "--set", "data.limit=256",
               "--set", f"out={out}", "--set", "model.g.width=8", "--set", "model.d.width=8",
               "--set", "train.batch_size=16", "--set", "train.steps=4", "--set", "train.progress=false",
               "--set", "train.log_every=2", "--set", "eval.every=2", "--set", "eval.n=64",
               "--set", "eval.metrics=fid,kid"])
    assert rc == 0
    (run,) = out.iterdir()
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in logged if "eval/fid" in r]
    assert [r["step"] for r in evals] == [2, 4] and all(r["eval/fid"] > 0 for r in evals)
    assert len(list((run / "checkpoints" / "best").iterdir())) == 1  # the best one is kept
    capsys.readouterr()

    rc = main(["eval", str(run), "--metrics", "fid,pr", "--n", "64", "--out", str(tmp_path / "e.json")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "fid" in printed and "precision" in printed and "fashion-mnist:test" in printed
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["provenance"]["step"] == 4 and res["provenance"]["n"] == 64
    assert len(res["provenance"]["extractor_sha256"]) == 64


def test_eval_user_errors_are_one_line(tmp_path, capsys, train_tiny):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a ganforge run folder" in capsys.readouterr().err
    run = train_tiny()  # a toy run: image metrics do not apply (its default is mode coverage)
    assert main(["eval", str(run), "--metrics", "fid", "--n", "100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "image samples" in err and "Traceback" not in err
    assert main(["eval", str(run), "--metrics", "fdi", "--ref", "fashion-mnist:test"]) == 2
    assert "unknown metric" in capsys.readouterr().err


def test_eval_config_is_validated(make_cfg):
    with pytest.raises(ConfigError, match="eval.metrics"):
        make_cfg("eval.every=10", "eval.metrics=fid,xyz", "eval.ref=fashion-mnist:test")
    with pytest.raises(ConfigError, match="eval.ref"):
        make_cfg("eval.every=10")  # toy data has no test split to compare with


def test_eval_modes_on_a_toy_run(train_tiny, tmp_path, capsys):
    run = train_tiny("train.steps=2")
    assert main(["eval", str(run), "--metrics", "modes", "--n", "500", "--out", str(tmp_path / "m.json")]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head.endswith("500 samples, seed 0") and "images)" not in head and "features" not in head
    res = json.loads((tmp_path / "m.json").read_text())
    assert set(res["results"]) == {"modes", "hq_fraction", "reverse_kl"}
    assert 0 <= res["results"]["modes"] <= 8 and res["provenance"]["step"] == 2
    # the same numbers as the metric function on the same samples
    from ganforge import load
    from ganforge.data.toy import ring8
    from ganforge.metrics import mode_metrics
    m = ring8()
    assert res["results"] == pytest.approx(mode_metrics(load(run).sample(500, seed=0), m.means, m.std))
    capsys.readouterr()
    assert main(["eval", str(run), "--metrics", "modes,fid"]) == 2  # no image metrics for toy data
    assert "image samples" in capsys.readouterr().err


def _real_images_as_generator(shift: int) -> FakeModel:
    """A 'conditional generator' that returns real test images of class (label + shift) % 10."""
    x, y = gi.load_split("fashion-mnist", "test")
    by_class = [x[y == k][:60] for k in range(10)]

    def sample(n, seed, labels):
        return by_class[(int(labels) + shift) % 10][:n].float().div(127.5).sub(1)
    return FakeModel(sample, num_classes=10)


@needs_fmnist
def test_conditional_accuracy_and_intra_class_fid():
    ext = get_feature_extractor("fmnist")
    kw = dict(metrics="acc,ifid", n=500, ref="fashion-mnist:test", extractor=ext)
    right = evaluate(_real_images_as_generator(0), **kw)["results"]
    wrong = evaluate(_real_images_as_generator(1), **kw)["results"]
    assert right["acc"] > 0.85  # the classifier's accuracy on real images of the asked class
    assert wrong["acc"] < 0.1  # every image shows the next class
    assert right["ifid"] < 0.25 * wrong["ifid"]
    assert set(f"ifid_{k}" for k in range(10)) <= set(right)
    assert right["ifid"] == pytest.approx(sum(right[f"ifid_{k}"] for k in range(10)) / 10)


def test_a_metric_that_does_not_apply_says_why():
    model = FakeModel(lambda n, seed: torch.zeros(n, 1, 28, 28))
    with pytest.raises(EvalError, match="class-conditional"):
        evaluate(model, metrics="acc", n=10)
    with pytest.raises(EvalError, match="paired"):
        evaluate(model, metrics="psnr", n=10)
