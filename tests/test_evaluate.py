"""Evaluation I/O: metric names, cached reference features with provenance, `ganforge eval`,
and evaluation during training (eval.every, best checkpoint)."""

from __future__ import annotations

import json

import pytest
import torch

from ganforge.cli import main
from ganforge.config import ConfigError
from ganforge.data import images as gi
from ganforge.evaluate import (EvalError, compute, evaluate_generator, parse_metrics, parse_ref,
                               reference_features)
from ganforge.features import get_feature_extractor
from ganforge.metrics import fid_from_features

needs_fmnist = pytest.mark.skipif(not (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                  reason="Debian package dataset-fashion-mnist not installed")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GANFORGE_DATA", str(tmp_path / "data"))
    torch.set_num_threads(1)


def test_metric_names_and_aliases():
    assert parse_metrics("fid,kid,pr,dc,is") == ["fid", "kid", "prdc", "inception_score"]
    assert parse_metrics(["pr", "dc"]) == ["prdc"]  # computed once
    with pytest.raises(EvalError, match="did you mean 'fid'"):
        parse_metrics("fdi")
    with pytest.raises(EvalError):
        parse_metrics(" , ")
    assert parse_ref("fashion-mnist") == ("fashion-mnist", "test")
    with pytest.raises(EvalError):
        parse_ref("fashion-mnist:validation")


def test_compute_matches_the_metric_functions():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g) + 0.5
    probs = torch.softmax(torch.randn(300, 10, generator=g), 1)
    out = compute(["fid", "kid", "prdc", "inception_score"], real, fake, probs)
    assert out["fid"] == pytest.approx(fid_from_features(real, fake), rel=1e-12)
    assert {"kid_mean", "kid_std", "precision", "recall", "density", "coverage", "is_mean"} <= out.keys()
    assert out["kid_mean"] > 0


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
    real = evaluate_generator(real_sampler, **kw)
    noise = evaluate_generator(noise_sampler, **kw)
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
    run = train_tiny()  # a toy run: no image reference to compare with
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--ref" in err and "Traceback" not in err
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
    assert main(["eval", str(run), "--metrics", "modes,fid"]) == 2  # no image reference for toy data
    assert "--ref" in capsys.readouterr().err


class _RealImagesAsGenerator:
    """A 'conditional generator' that returns real test images of class (label + shift) % 10."""

    conditional, num_classes = True, 10

    def __init__(self, shift: int):
        x, y = gi.load_split("fashion-mnist", "test")
        self.by_class = [x[y == k][:60] for k in range(10)]
        self.shift = shift

    def sample(self, n, seed=None, labels=None):
        imgs = self.by_class[(int(labels) + self.shift) % 10][:n]
        return imgs.float().div(127.5).sub(1)


@needs_fmnist
def test_conditional_accuracy_and_intra_class_fid():
    from ganforge.evaluate import conditional_results
    from ganforge.features import get_feature_extractor
    ext = get_feature_extractor("fmnist")
    right = conditional_results(_RealImagesAsGenerator(0), n=500, ref="fashion-mnist:test", extractor=ext)
    wrong = conditional_results(_RealImagesAsGenerator(1), n=500, ref="fashion-mnist:test", extractor=ext)
    assert right["acc"] > 0.85  # the classifier's accuracy on real images of the asked class
    assert wrong["acc"] < 0.1  # every image shows the next class
    assert right["ifid"] < 0.25 * wrong["ifid"]
    assert set(f"ifid_{k}" for k in range(10)) <= set(right)
    assert right["ifid"] == pytest.approx(sum(right[f"ifid_{k}"] for k in range(10)) / 10)
