"""benchmarks/finetune.py: a state trained in the benchmark's process saved as a run folder that
train.init reads, the overrides of each row, and the CPU-minutes-to-target report."""

from __future__ import annotations

import argparse

import torch

from benchmarks import common, finetune


def test_save_state_run_gives_a_run_that_train_init_and_save_model_read(make_cfg, tmp_path, one_thread):
    state = common.build_state(make_cfg("train.steps=100000000"))
    common.train_for_cpu(state, common.Reporter(), 0.05)
    run = common.save_state_run(state, tmp_path / "pre")
    model = common.save_model_folder(run, tmp_path / "pre-model")
    for init, what, nets in ((run, "gd", ("G", "D")), (model, "g", ("G",))):
        fresh = common.build_state(make_cfg(f"train.init={init}", f"train.init_what={what}", "seed=5"))
        for name in nets:
            # a model folder holds the sampling G: the EMA, which vanilla keeps at its CPU size
            source = state.sampler_net if init == model else getattr(state, name)
            mine, theirs = getattr(fresh, name).state_dict(), source.state_dict()
            assert all(torch.equal(mine[k], theirs[k]) for k in mine), (init, name)
        if what == "g":  # D was not taken from the model folder
            assert not all(torch.equal(a, b) for a, b in zip(fresh.D.state_dict().values(),
                                                             state.D.state_dict().values()))


def _args(**kw):
    base = dict(seeds=[0], classes=[5, 7], limit=1000, freeze_d=1)
    return argparse.Namespace(**{**base, **kw})


def test_row_overrides(tmp_path):
    o = finetune.row_overrides(_args(), "scratch", tmp_path)
    assert "data.classes=[5,7]" in o and "data.limit=1000" in o and not any("init" in x for x in o)
    o = finetune.row_overrides(_args(), "finetune-g", tmp_path)
    assert f"train.init={tmp_path / 'pretrain-model'}" in o and "train.init_what=g" in o
    o = finetune.row_overrides(_args(freeze_d=2), "finetune-gd-freezed", tmp_path)
    assert f"train.init={tmp_path / 'pretrain-run'}" in o and "train.init_what=gd" in o and "train.freeze_d=2" in o
    assert not any("freeze" in x for x in finetune.row_overrides(_args(), "finetune-gd", tmp_path))
    assert finetune.target_ref([5, 7]) == "fashion-mnist:test@5,7"


def _points(fids, every=30.0):
    return [{"t_s": i * every, "cpu_s": i * every + 0.2, "step": 10 * i, "fid": f} for i, f in enumerate(fids)]


def test_cpu_minutes_to_target_and_the_table():
    results = {"scratch": {"points": _points([300, 120, 80, 50])},
               "finetune-gd": {"points": _points([90, 45, 40, 41])},
               "finetune-g": {"points": _points([90, 70, 60, 55])}}
    assert finetune.reach(results["scratch"]["points"], 50) == 90  # the first evaluation at or below
    assert finetune.reach(results["finetune-gd"]["points"], 50) == 30
    assert finetune.reach(results["finetune-g"]["points"], 50) is None
    text = finetune.tables(results, 50.0, {"cpu_s": 480.5, "classes": [0, 1], "step": 7, "fid_own_classes": 33.0})
    assert "| 0.50 | 120.00 | 45.00 | 70.00 |" in text
    assert "| finetune-gd | 90.00 | 41.00 | 40.00 | 0.50 | 3.00x |" in text
    assert "| scratch | 300.00 | 50.00 | 50.00 | 1.50 | 1.00x |" in text
    assert "| finetune-g | 90.00 | 55.00 | 55.00 | not reached | - |" in text
    assert "8.01 CPU-min on classes 0,1" in text
