"""The reliability benchmarks (``python -m benchmarks.soak`` / ``python -m benchmarks.reliability``) at toy size:
the soak samples RSS and fits a slope; resume and kill -9 give back the uninterrupted weights;
user mistakes through the real CLI end in ``error: ...`` and exit 2, never a traceback.

The benchmarks themselves run for 30 minutes / several minutes; here each part runs on a tiny
2-D MLP (ring8) or on a handful of bad-input cases, in a few seconds each.
"""

from __future__ import annotations

import math

import pytest

from benchmarks import reliability, soak

TOY = ["model.arch=mlp", "data.name=ring8", "model.z_dim=4", "model.g.hidden=16", "model.d.hidden=16",
       "train.batch_size=32", "train.threads=1", "train.progress=false", "train.device=cpu",
       "train.deterministic=true"]

# A cross-section of the bad inputs: config, data, images, run folders, the malicious pickle.
BAD_SUBSET = ["unknown-key", "unknown-preset", "only-broken", "rgba", "resume-not-run", "resume-evil-pickle"]
# Found by `python -m benchmarks.reliability` (BENCHMARKS.md, Reliability): these still end in a traceback.
KNOWN_BUGS = ["resume-bad-config", "sample-foreign-ckpt"]


@pytest.fixture(scope="module")
def bad_rows(tmp_path_factory):
    """One run of the bad-input cases (3 at a time) shared by the tests below: {id: row}."""
    work = tmp_path_factory.mktemp("bad-inputs")
    rows = reliability.bad_inputs(work, only=BAD_SUBSET + KNOWN_BUGS, jobs=3)
    return work, {r["id"]: r for r in rows}


def test_slope_per_hour_and_diffs():
    t = [0.0, 60.0, 120.0, 180.0]
    assert soak.slope_per_hour(t, [100.0, 101.0, 102.0, 103.0]) == pytest.approx(60.0)  # 1 MB/min
    assert soak.slope_per_hour(t, [5.0] * 4) == 0.0
    assert math.isnan(soak.slope_per_hour([1.0], [2.0]))
    import torch
    a = {"w": torch.ones(3), "n": torch.tensor(4), "opt": [{"step": 2}]}
    assert reliability.max_abs_diff(a, {"w": torch.ones(3), "n": torch.tensor(4), "opt": [{"step": 2}]}) == 0.0
    assert reliability.max_abs_diff(a, {"w": torch.ones(3) * 1.5, "n": torch.tensor(4), "opt": [{"step": 2}]}) == 0.5
    assert reliability.max_abs_diff(a, {"w": torch.ones(3), "n": torch.tensor(5), "opt": [{"step": 2}]}) == math.inf
    assert reliability.max_abs_diff(a, {"w": torch.ones(3), "n": torch.tensor(4), "opt": [{"step": 3}]}) == math.inf
    assert reliability.max_abs_diff(a, {"w": torch.ones(4), "n": torch.tensor(4), "opt": [{"step": 2}]}) == math.inf


def test_soak_samples_rss_and_fits_a_slope(tmp_path):
    row = soak.soak(0.1, "vanilla", TOY + ["train.sample_every=300", "train.ckpt_every=300"],
                     out=str(tmp_path))
    for key in ("rss_start_mb", "rss_end_mb", "rss_peak_mb", "slope_mb_per_h", "slope_2nd_half_mb_per_h",
                "steps", "wall_s", "child_cpu_s", "n_samples", "command", "samples"):
        assert key in row, key
    assert row["reason"] == "time budget" and row["steps"] > 0
    assert math.isfinite(row["slope_mb_per_h"])
    assert row["n_samples"] >= 10 and row["n_post_warmup"] < row["n_samples"]
    assert 0 < row["rss_start_mb"] <= row["rss_peak_mb"] and 0 < row["rss_end_mb"] <= row["rss_peak_mb"]
    assert row["command"].startswith("ganforge train vanilla") and "train.max_minutes=0.1" in row["command"]
    assert "| vanilla |" in soak.soak_table(row)


def test_resume_equivalence_is_exact(tmp_path):
    cases = {"toy-ema": ("vanilla", TOY + ["train.steps=40", "train.ema=0.9", "train.log_every=10",
                                           "train.sample_every=0", "train.ckpt_every=0"])}
    (row,) = reliability.resume_equivalence(tmp_path, cases=cases, common=[])
    assert row["steps"] == 40 and row["stopped_at"] == 20
    assert set(row["max_diff_weights"]) == {"G", "D", "G_ema"}
    assert row["max_diff"] == 0.0 and row["rest_identical"] and row["loss_at_N_equal"]
    assert row["weight_change_second_half"] > 0  # the comparison is not vacuous
    assert "0" in reliability.reliability_tables({"resume": [row]})


def test_kill_9_drill_loses_at_most_ckpt_every_steps(tmp_path):
    out = reliability.kill_drill(tmp_path, "vanilla", overrides=TOY + ["train.sample_every=0"], k=100, steps=1000,
                           repeats=1, compare=False)
    (row,) = out["rows"]
    assert row["exit_after_kill"] == -9
    assert row["step_at_kill"] >= 300 and row["resumed_step"] % 100 == 0
    assert 0 <= row["steps_lost"] <= 100
    assert row["resume_exit"] == 0 and row["completed"] and row["final_step"] == 1000
    assert f"step {row['resumed_step']}" in row["resume_line"]


def test_bad_inputs_end_in_one_line_errors(bad_rows):
    work, by_id = bad_rows
    rows = [by_id[c] for c in BAD_SUBSET]
    for r in rows:
        assert not r["traceback"], f"{r['id']}: {r['stderr']}"
        if r["expect"] == "error":
            assert r["exit"] == 2 and r["error_line"].startswith("error:"), r
        else:
            assert r["exit"] == 0, r
        assert r["ok"], r
    assert not (work / "PWNED-resume").exists()
    table = reliability.reliability_tables({"bad_inputs": rows})
    assert table.count("\n") == len(rows) + 1 and "BUG" not in table


@pytest.mark.parametrize("case", KNOWN_BUGS)
def test_bad_inputs_found_by_the_reliability_bench_are_clean_errors(bad_rows, case):
    """Once tracebacks (a broken config.yaml on --resume; `sample` on another architecture's
    checkpoint), now one-line errors."""
    r = bad_rows[1][case]
    assert r["ok"] and not r["traceback"], r["stderr"][-600:]
