"""The sequence task end to end: sines / csv: data, the GAN objective with lengths as y, the
sequence pictures, ganforge.load(run).sample, and `ganforge eval` with TimeGAN's two scores."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.config import resolve
from ganforge.data import build_dataset, load_reference
from ganforge.errors import ConfigError, EvalError
from ganforge.evaluation import capabilities, evaluate, sequence_metrics
from ganforge.loop import build_state
from ganforge.metrics import timeseries
from ganforge.tasks import TASKS, task_of
from ganforge.validation import validate

pytestmark = pytest.mark.usefixtures("one_thread")

T = 8
TINY = ("data.limit=48", f"data.length={T}", "data.features=2", "model.z_dim=4", "model.g.hidden=8",
        "model.d.hidden=8", "model.g.layers=1", "model.d.layers=1", "train.batch_size=8", "train.steps=3",
        "train.log_every=1", "train.sample_every=2", "train.ckpt_every=0", "train.progress=false",
        "train.device=cpu", "train.threads=1")


@pytest.fixture
def fast_scores(monkeypatch):
    """TimeGAN's scores with 30 training steps of their post-hoc nets instead of 400."""
    monkeypatch.setattr(sequence_metrics, "discriminative_score",
                        functools.partial(timeseries.discriminative_score, steps=30))
    monkeypatch.setattr(sequence_metrics, "predictive_score",
                        functools.partial(timeseries.predictive_score, steps=30))


def tiny(tmp_path, *extra, preset="seqgan"):
    return validate(resolve(preset, overrides=[f"out={tmp_path}", *TINY, *extra]))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs")
    return ganforge.train("seqgan", [f"out={out}", *TINY], quiet=True)


def test_registered_family_dataset_and_task():
    cfg = resolve("seqgan")
    task = task_of(cfg.model.arch)
    assert task is TASKS.get("sequence") and "sequences" in task.offers
    assert resolve("seqgan-conv").model.g["arch"] == "conv"
    with pytest.raises(ConfigError, match="time-series data"):
        validate(resolve("dcgan", overrides=["data.name=sines"]))
    with pytest.raises(ConfigError, match="DiffAugment"):
        validate(resolve("seqgan", overrides=["augment.policy=color"]))
    with pytest.raises(ConfigError, match="data.min_length"):
        validate(resolve("seqgan", overrides=["data.min_length=30"]))


def test_sines_are_seeded_and_the_test_split_is_another_draw(tmp_path):
    cfg = tiny(tmp_path)
    a, b = build_dataset(cfg), build_dataset(tiny(tmp_path, "seed=7"))
    assert torch.equal(a.data, b.data)  # the benchmark's data do not depend on the run's seed ...
    assert not torch.equal(a.next(8)[0], b.next(8)[0])  # ... its order does
    test = load_reference("sines:test", limit=48)
    train = load_reference("sines:train", limit=48)
    assert test.images.shape == (48, 24, 5) and not torch.equal(test.images, train.images)
    assert torch.equal(train.images[:, :T, :2], timeseries_sines(48)[:, :T, :2])


def timeseries_sines(n):
    from ganforge.data.sequences import sines
    return sines(n, seed=0).data  # the documented train seed, TimeGAN's 24 steps x 5 features


def test_train_load_sample_and_pictures(run):
    m = ganforge.load(run)
    x = m.sample(5, seed=3)
    assert x.shape == (5, T, 2) and x.abs().max() <= 1
    assert torch.equal(x, m.sample(5, seed=3)) and not torch.equal(x, m.sample(5, seed=4))
    assert {p.name for p in (run / "samples").iterdir()} == {"step-0000002.png", "step-0000003.png"}
    from PIL import Image
    assert Image.open(run / "samples" / "step-0000003.png").size == (2 * 200 + 15, 4 * 95 + 20)  # real | fake


def test_sample_cli_writes_a_plot_or_values(run, tmp_path, capsys):
    assert main(["sample", str(run), "--n", "6", "-o", str(tmp_path / "s.npy")]) == 0
    values = np.load(tmp_path / "s.npy")
    assert values.shape == (6, T, 2)
    assert np.allclose(values, ganforge.load(run).sample(6, seed=0).numpy())
    assert main(["sample", str(run), "--n", "6", "-o", str(tmp_path / "s.png")]) == 0
    from PIL import Image
    assert Image.open(tmp_path / "s.png").size == (205, 6 * 95 + 20)  # generated only, one panel each


def test_eval_cli_reports_both_scores(run, tmp_path, capsys, fast_scores):
    out = tmp_path / "e.json"
    assert main(["eval", str(run), "--n", "40", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["provenance"]["reference"] == "sines:test"
    r = res["results"]
    assert set(r) == {"discriminative_score", "predictive_score"}
    assert 0 <= r["discriminative_score"] <= 0.5 and 0 < r["predictive_score"] < 2


def test_scores_are_the_timegan_functions_of_reference_and_samples(run, fast_scores):
    """What the metrics compute: the score functions on the first n test sines (the run's length
    and features) and n samples drawn as the task documents."""
    m = ganforge.load(run)
    got = evaluate(m, metrics="disc_score,pred_score", n=40, seed=2)["results"]
    from ganforge.data.sequences import sines
    real = sines(40, length=T, features=2, seed=1).data  # the test seed, in the run's shape
    g = torch.Generator().manual_seed(2 * 1_000_003)
    fake = m(m.latent(40, generator=g), None)
    assert got["discriminative_score"] == timeseries.discriminative_score(real, fake, seed=2, steps=30)
    assert got["predictive_score"] == timeseries.predictive_score(fake, real, seed=2, steps=30)


def test_eval_errors_are_one_line(run, capsys, tmp_path):
    assert main(["eval", str(run), "--n", "40", "--metrics", "fid"]) == 2
    assert capsys.readouterr().err.strip() == "error: metric 'fid' needs image samples (not vectors)"
    assert main(["eval", str(run), "--n", "40", "--ref", "fashion-mnist:test"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: 'fashion-mnist:test' is not a time-series reference") and "\n" not in err
    m = ganforge.load(run)
    assert "sequences" in capabilities(m) and "images" not in capabilities(m)
    np.save(tmp_path / "other.npy", np.zeros((10, 5, 3)))
    with pytest.raises(EvalError, match=r"shape \(5, 3\), the model makes \(8, 2\)"):
        evaluate(m, metrics="disc_score", n=10, ref=f"npy:{tmp_path / 'other.npy'}:train")
    assert main(["translate", str(run), str(run), "-o", str(run / "t")]) == 2
    assert "serves `sample`, `eval`, not `translate`" in capsys.readouterr().err
    assert main(["interpolate", str(run), "-o", str(tmp_path / "i")]) == 2
    assert capsys.readouterr().err.strip() == "error: this is a time-series model: it serves `sample`, `eval`, not " \
                                              "`interpolate`"


def test_variable_lengths_reach_both_nets(tmp_path):
    cfg = tiny(tmp_path, "data.min_length=3")
    state = build_state(cfg)
    x, lengths = batch = state.batch(8)
    assert lengths is not None and lengths.min() >= 3
    _, stats, fake = state.objective.d_loss(state.G, state.D, batch, d_step=0, keep_fake=True)
    steps = torch.arange(T)[None, :, None]
    assert (fake.detach()[(steps >= lengths[:, None, None]).expand_as(fake)] == 0).all()  # G got the lengths
    assert fake.detach()[(steps < lengths[:, None, None]).expand_as(fake)].abs().min() > 0
    # D ignores the padded steps: changing them does not change its logits
    junk = x + (steps >= lengths[:, None, None]).float() * 5
    with torch.no_grad():
        assert torch.allclose(state.D(x, lengths), state.D(junk, lengths))
        assert not torch.allclose(state.D(x, None), state.D(junk, None))
    assert torch.isfinite(stats["loss/D"])


def test_csv_series_train_and_score_against_their_training_windows(tmp_path, capsys, fast_scores):
    t = np.arange(120)
    series = np.stack([np.sin(t / 5), np.cos(t / 7) * 3 + 10], 1)
    path = tmp_path / "series.csv"
    path.write_text("a,b\n" + "\n".join(f"{u},{v}" for u, v in series))
    run = ganforge.train("seqgan-conv", [f"out={tmp_path}", *TINY, f"data.name=csv:{path}", "data.limit=0",
                                         "data.stride=2", "model.g.arch=conv", "model.g.layers=1",
                                         "model.d.layers=1"], quiet=True)
    assert main(["eval", str(run), "--n", "30", "--out", str(tmp_path / "e.json")]) == 0
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["provenance"]["reference"] == f"csv:{path}:train"
    assert 0 <= res["results"]["discriminative_score"] <= 0.5
    with pytest.raises(Exception, match="no 'test' split"):
        load_reference(f"csv:{path}:test")


def test_periodic_evaluation_keeps_the_best_checkpoint(tmp_path, fast_scores):
    run = ganforge.train("seqgan", [f"out={tmp_path}", *TINY, "eval.every=3", "eval.n=30"], quiet=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/discriminative_score" in r]
    assert [r["step"] for r in evals] == [3] and 0 <= evals[0]["eval/predictive_score"] < 2
    assert (run / "checkpoints" / "best").is_dir()  # the preset keeps the best by discriminative_score
