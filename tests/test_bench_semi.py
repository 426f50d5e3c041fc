"""``python -m benchmarks.semi`` at toy size: the supervised baseline is the GAN's D net with the
GAN's initial weights, labelled subset and optimizer, trained by cross-entropy alone; the test
accuracy is D's on the test split; the table's means, spreads and gains by hand."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from benchmarks import common, semi
from test_semi import K, _images  # the same tiny labelled images (brightness tells the class)

pytestmark = pytest.mark.usefixtures("one_thread")

_unique = itertools.count()
TINY = ["model.z_dim=4", "model.g.width=4", "model.d.width=4", "train.batch_size=6", "train.device=cpu",
        "train.threads=1"]


@pytest.fixture
def shades(monkeypatch):
    """``semi:NAME`` of a labelled 8x8 dataset with train (60) and test (30) splits, for this test only."""
    from ganforge.data import DATASETS, Dataset, InMemorySource, Split
    name = f"test-shades-{next(_unique)}"
    train, test = _images(60, 1), _images(30, 2)

    def build(cfg, path=""):
        return InMemorySource(*train, seed=cfg.seed, num_classes=K, description="shades")

    def split(name_, which, limit=0, **_):
        x, y = train if which == "train" else test
        return Split(x[:limit or None], y[:limit or None])

    monkeypatch.setitem(DATASETS._items, name, Dataset(build=build, task="generate", split=split,
                                                       classes=("dark", "mid", "bright")))
    return [f"data.name=semi:{name}", *TINY]


def _state(extra, seed=0, lpc=4):
    return common.build_state(semi.semi_config(lpc, seed, extra))


def test_baseline_starts_where_the_gan_starts_and_trains_only_d_on_the_labelled_subset(shades):
    gan, base = _state(shades, seed=3), _state(shades, seed=3)
    other = _state(shades, seed=4)
    assert torch.equal(gan.data.index, base.data.index)  # the seed's labelled subset, in both arms
    assert not torch.equal(gan.data.index, other.data.index)  # and the seed picks it
    assert torch.equal(torch.bincount(base.data.labelled.labels, minlength=K), torch.tensor([4, 4, 4]))
    for a, b in zip(gan.D.state_dict().values(), base.D.state_dict().values()):
        assert torch.equal(a, b)  # same initial D
    g0 = {k: v.clone() for k, v in base.G.state_dict().items()}
    d0 = {k: v.clone() for k, v in base.D.state_dict().items()}

    # one step by hand: cross-entropy of the next labelled batch, one Adam step with the preset's settings
    ref = _state(shades, seed=3)
    x, y = ref.data.labelled.next(6)
    assert set(y.tolist()) <= set(range(K))
    ref.D.train()
    torch.manual_seed(0)
    loss = F.cross_entropy(ref.D(x)[0], y)
    ref.opt_d.zero_grad()
    loss.backward()
    ref.opt_d.step()
    torch.manual_seed(0)  # the same dropout masks
    got = semi.supervised_step(base)
    assert got == pytest.approx(loss.item(), rel=1e-6)
    for k, v in base.D.state_dict().items():
        torch.testing.assert_close(v, ref.D.state_dict()[k])
    assert any(not torch.equal(v, d0[k]) for k, v in base.D.state_dict().items())
    assert all(torch.equal(v, g0[k]) for k, v in base.G.state_dict().items())  # G untouched
    assert base.opt_d.param_groups[0]["lr"] == 1e-3 and base.opt_d.param_groups[0]["betas"] == (0.5, 0.999)

    # it learns the labelled images: the loss falls from ln 3 (a tiny D at lr 3e-4: slowly)
    losses = [semi.supervised_step(base) for _ in range(60)]
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.003


def test_test_accuracy_is_d_argmax_on_the_test_split_with_dropout_off(shades):
    state = _state(shades)
    for _ in range(20):
        semi.supervised_step(state)
    x, y = _images(30, 2)
    state.D.eval()
    with torch.no_grad():
        want = (state.D(x.float().div(127.5).sub(1))[0].argmax(1) == y).float().mean().item()
    state.D.train()
    assert semi.test_accuracy(state, n=30) == pytest.approx(want)
    assert state.D.training and state.G.training  # both back in training mode


def test_run_arm_trains_each_arm_for_its_cpu_budget(shades, monkeypatch, capsys):
    monkeypatch.setattr(semi, "TEST_N", 30)
    rows = [semi.run_arm(arm, 4, 0, 0.02, shades) for arm in ("sgan", "supervised")]
    for r in rows:
        assert r["labels"] == 12 and r["steps"] > 0 and r["cpu_s"] >= 0.02 * 60
        assert list(r["test_acc_at"]) == ["0.33", "0.67", "1.00"] and r["test_acc"] == r["test_acc_at"]["1.00"]
    assert "train_loss_last100" in rows[1] and "train_loss_last100" not in rows[0]
    assert rows[1]["steps"] == rows[1]["d_steps"]
    assert "supervised    12 labels seed 0: test_acc" in capsys.readouterr().out


def test_table_means_spreads_and_gains():
    rows = [{"arm": arm, "labels_per_class": 10, "labels": 100, "seed": s, "test_acc": acc}
            for arm, s, acc in [("sgan", 0, 0.70), ("supervised", 0, 0.60), ("sgan", 1, 0.80),
                                ("supervised", 1, 0.65), ("sgan", 2, 0.75), ("supervised", 2, 0.70)]]
    table = semi.semi_table(rows, "abc1234", "python -m benchmarks.semi")
    # SGAN 75 ± 5; supervised 65 ± 5; gains 10, 15, 5 -> 10 ± 5
    assert "| 100 (10) | 75.00 ± 5.00 | 65.00 ± 5.00 | +10.00 ± 5.00 |" in table
    assert "| 0: 70.00 / 60.00; 1: 80.00 / 65.00; 2: 75.00 / 70.00 | 0,1,2 |" in table
    assert table.startswith("Commit `abc1234`, `python -m benchmarks.semi`.")


def test_merge_puts_per_seed_files_in_one_table_and_refuses_mixed_commits(tmp_path, capsys, restore_signals):
    import json
    files = []
    for seed, (g, s) in enumerate([(0.70, 0.60), (0.80, 0.65)]):
        rows = [{"arm": "supervised", "labels_per_class": 10, "labels": 100, "seed": seed, "test_acc": s},
                {"arm": "sgan", "labels_per_class": 10, "labels": 100, "seed": seed, "test_acc": g}]
        files.append(tmp_path / f"semi-{seed}.json")
        files[-1].write_text(json.dumps({"command": f"python -m benchmarks.semi --seeds {seed}", "commit": "abc1234",
                                         "rows": rows}))
    with pytest.raises(SystemExit) as e:
        common.cli(semi.parser, semi.main, ["--merge", ",".join(map(str, files))])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("Commit `abc1234`, `python -m benchmarks.semi --seeds 0`, `python -m benchmarks.semi --seeds 1`.")
    assert "| 100 (10) | 75.00 ± 7.07 | 62.50 ± 3.54 | +12.50 ± 3.54 | 0: 70.00 / 60.00; 1: 80.00 / 65.00 | 0,1 |" in out
    doc = json.loads(files[1].read_text())
    files[1].write_text(json.dumps({**doc, "commit": "def5678"}))
    with pytest.raises(SystemExit) as e:
        common.cli(semi.parser, semi.main, ["--merge", ",".join(map(str, files))])
    assert e.value.code == 2 and "different commits" in capsys.readouterr().err
