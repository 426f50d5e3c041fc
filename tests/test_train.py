"""The training loop: it learns (ring8), schedules phases, logs, checkpoints, stops, resumes exactly."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import ganforge
from ganforge.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, verify
from ganforge.data.toy import ring8
from ganforge.losses import LOSSES, AdversarialLoss
from ganforge.rundir import read_metrics
from ganforge.reporting import Reporter
from ganforge.errors import TrainingDiverged
from ganforge.loop import build_state, train_step
from ganforge.session import resume, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _result(run) -> dict:
    return json.loads((run / "result.json").read_text())


def _final_nets(run) -> dict:
    nets, _, _ = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    return nets


# -- (a) it learns: ring8 mode coverage ------------------------------------------------------

def _modes_inline(x: torch.Tensor, means: torch.Tensor, std: float) -> dict:
    """PacGAN/VEEGAN protocol: HQ if within 3 std of the nearest mean; a mode is captured if it
    has at least one HQ sample."""
    d = ((x[:, None, :].double() - means[None, :, :].double()) ** 2).sum(-1).sqrt()  # (N, K)
    nearest_d, nearest = d.min(1)
    hq = nearest_d <= 3 * std
    counts = torch.bincount(nearest[hq], minlength=len(means))
    return {"modes": int((counts > 0).sum()), "hq_fraction": float(hq.double().mean()), "counts": counts.tolist()}


# Tuned on this 2-core CPU: 8/8 modes and 50-63 % HQ samples for seeds 0..7 (3-8 s per run).
RING8 = ("model.z_dim=8", "model.g.hidden=64", "model.d.hidden=128", "optim.lr_g=1e-3",
         "optim.lr_d=1e-3", "train.ema=0.99", "train.steps=1000", "train.batch_size=256",
         "train.log_every=100", "seed=0")


def test_ring8_captures_most_modes(make_cfg, capsys):
    mixture = ring8()
    cfg = make_cfg(*RING8)
    t0 = time.perf_counter()
    run = train(cfg, quiet=True)
    seconds = time.perf_counter() - t0
    x = ganforge.load(run).sample(2500, seed=0)
    m = _modes_inline(x, mixture.means, mixture.std)
    try:
        from ganforge.metrics.modes import mode_metrics
    except ImportError:
        pass
    else:  # the library's metric agrees with the inline definition
        lib = mode_metrics(x, mixture.means, mixture.std)
        assert lib["modes"] == m["modes"]
        assert lib["hq_fraction"] == pytest.approx(m["hq_fraction"])
    with capsys.disabled():
        print(f"\nring8 vanilla mlp 1000 steps: {m['modes']}/8 modes, {m['hq_fraction']:.1%} HQ, "
              f"counts {m['counts']}, {seconds:.1f}s")
    assert m["modes"] >= 6
    assert m["hq_fraction"] >= 0.25

    # the same criterion fails for the untrained generator of the same config
    state = build_state(make_cfg(*RING8))
    state.G.eval()
    with torch.no_grad():
        x0 = state.G(torch.randn(2500, cfg.model.z_dim))
    m0 = _modes_inline(x0, mixture.means, mixture.std)
    assert m0["modes"] < 6 or m0["hq_fraction"] < 0.25


# -- (b) the loop ------------------------------------------------------------------------------

def test_n_critic_d_steps_per_g_step(make_cfg):
    state = build_state(make_cfg("train.n_critic=3"))
    calls = {"d": 0, "g": 0}
    for name, opt in (("d", state.opt_d), ("g", state.opt_g)):  # a hook counts the real steps
        opt.register_step_post_hook(lambda *_, _name=name: calls.__setitem__(_name, calls[_name] + 1))
    report = Reporter()
    for _ in range(4):
        train_step(state, report)
    assert calls == {"d": 12, "g": 4}
    assert (state.step, state.d_steps) == (4, 12)
    assert state.images_seen == 12 * 32


def test_n_critic_in_a_full_run(train_tiny):
    run = train_tiny("train.n_critic=5", "train.steps=4", "train.log_every=4")
    last = read_metrics(run)[-1]
    assert last["step"] == 4
    assert last["kimg"] == pytest.approx(4 * 5 * 32 / 1000)  # real images shown to D
    assert _result(run)["step"] == 4


def test_weight_clipping_keeps_d_inside_the_clip(train_tiny):
    run = train_tiny("loss.name=wasserstein", "loss.clip=0.01", "optim.name=rmsprop", "optim.lr_d=1e-2",
                     "optim.lr_g=1e-3", "train.n_critic=2", "train.steps=3")
    D = _final_nets(run)["D"]
    assert D
    values = torch.cat([v.flatten() for v in D.values()])
    assert values.abs().max() <= 0.01
    assert (values.abs() == 0.01).any()  # the clip was active (xavier init is far wider)


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_follows_the_formula(make_cfg, warmup):
    """ema <- d * ema + (1 - d) * param after a first update that copies (torch.optim.swa_utils);
    d = train.ema, or min(train.ema, (1 + t) / (10 + t)) at generator step t with the warm-up."""
    ema = 0.9
    state = build_state(make_cfg(f"train.ema={ema}", f"train.ema_warmup={str(warmup).lower()}"))
    report = Reporter()

    def tensors(net):
        return {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}

    train_step(state, report)  # first update copies G
    prev, g = tensors(state.G_ema.module), tensors(state.G)
    assert prev.keys() == g.keys() and len(prev) > 0
    assert all(torch.equal(prev[k], g[k]) for k in prev)

    for t in (1, 2, 3):
        train_step(state, report)
        cur, g = tensors(state.G_ema.module), tensors(state.G)
        d = min(ema, (1 + t) / (10 + t)) if warmup else ema
        for k in cur:  # parameters and BN running statistics (use_buffers=True)
            expected = d * prev[k] + (1 - d) * g[k]
            assert torch.allclose(cur[k], expected, rtol=0, atol=1e-6), (t, k)
        assert any(not torch.equal(cur[k], g[k]) for k in cur)  # the EMA lags behind G
        prev = cur
    assert int(state.G_ema.n_averaged) == 4


PROB_KEYS = {"step", "loss/D", "loss/G", "D(x)", "D(G(z))", "grad/D", "grad/G", "img/s"}


def test_metrics_jsonl_probabilistic_loss(train_tiny):
    run = train_tiny("train.steps=6", "train.log_every=2")
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [2, 4, 6]
    for r in rows:
        assert PROB_KEYS <= r.keys(), PROB_KEYS - r.keys()
        assert all(math.isfinite(r[k]) for k in PROB_KEYS)
        assert 0 < r["D(x)"] < 1 and 0 < r["D(G(z))"] < 1
        assert r["grad/D"] > 0 and r["grad/G"] > 0 and r["img/s"] > 0
        assert "W_estimate" not in r


def test_metrics_jsonl_wasserstein_estimate(train_tiny):
    run = train_tiny("loss.name=wasserstein", "loss.penalties={gp: 10}", "train.n_critic=2",
                     "train.steps=4", "train.log_every=2")
    rows = read_metrics(run)
    assert len(rows) == 2
    for r in rows:
        assert {"step", "loss/D", "loss/G", "grad/D", "grad/G", "img/s", "W_estimate", "loss/D/gp"} <= r.keys()
        assert r["W_estimate"] == pytest.approx(r["D/real"] - r["D/fake"], abs=1e-5)


def test_samples_and_checkpoints_written(train_tiny):
    run = train_tiny("train.steps=4", "train.sample_every=2", "train.ckpt_every=2")
    for name in ("config.yaml", "run.json", "result.json", "metrics.jsonl"):
        assert (run / name).is_file(), name
    pngs = sorted(p.name for p in (run / "samples").glob("*.png"))
    assert pngs == ["step-0000002.png", "step-0000004.png"]
    for p in pngs:
        with Image.open(run / "samples" / p) as im:
            im.verify()
    ckpts = [p.name for p in list_checkpoints(run / "checkpoints")]
    assert ckpts == ["ckpt-0000002", "ckpt-0000004"]
    for c in list_checkpoints(run / "checkpoints"):
        verify(c)


def test_image_run_writes_an_image_grid(train_tiny, image_dataset):
    name = image_dataset((1, 28, 28))
    run = train_tiny(f"data.name={name}", "model.arch=dcgan", "model.g={width: 8}", "model.d={width: 8}",
                     "train.steps=2", "train.batch_size=8", "train.grid_size=16", preset="dcgan")
    info = json.loads((run / "run.json").read_text())
    assert info["data_shape"] == [1, 28, 28] and info["task"] == "generate"
    with Image.open(run / "samples" / "step-0000002.png") as im:
        assert im.size == (4 * (28 + 2) + 2,) * 2  # a 4x4 grid with 2 px padding
    x = ganforge.load(run).sample(3, seed=0)
    assert x.shape == (3, 1, 28, 28) and x.abs().max() <= 1


def test_run_folders_are_numbered_and_never_overwritten(train_tiny, runs_dir):
    a = train_tiny()
    weights = (latest_checkpoint(a / "checkpoints") / "weights.safetensors").read_bytes()
    config = (a / "config.yaml").read_text()
    b = train_tiny("train.steps=2")
    assert (a.name, b.name) == ("00000-vanilla", "00001-vanilla")
    assert (latest_checkpoint(a / "checkpoints") / "weights.safetensors").read_bytes() == weights
    assert (a / "config.yaml").read_text() == config
    (runs_dir / "00007-other").mkdir()
    c = train_tiny("name=my run!", "train.steps=1")
    assert c.name == "00008-my-run"
    assert sorted(p.name for p in runs_dir.iterdir()) == ["00000-vanilla", "00001-vanilla", "00007-other",
                                                          "00008-my-run"]


def test_max_minutes_stops_early(train_tiny):
    t0 = time.perf_counter()
    run = train_tiny("train.steps=1000000", "train.max_minutes=0.003", "train.log_every=1000")
    assert time.perf_counter() - t0 < 60
    res = _result(run)
    assert res["reason"] == "time budget"
    assert 0 < res["step"] < 1000000
    assert latest_checkpoint(run / "checkpoints").name == f"ckpt-{res['step']:07d}"  # final checkpoint


def _all_finite(run) -> bool:
    for c in list_checkpoints(run / "checkpoints"):
        nets, _, _ = load_checkpoint(c)
        for sd in nets.values():
            for v in sd.values():
                if v.is_floating_point() and not torch.isfinite(v).all():
                    return False
    return True


def test_huge_learning_rate_raises_training_diverged(make_cfg, runs_dir):
    cfg = make_cfg("optim.lr_g=1e30", "optim.lr_d=1e30", "train.steps=20", "train.log_every=1",
                   "train.ckpt_every=1", "train.nan_retries=0")
    with pytest.raises(TrainingDiverged, match="NaN/Inf"):
        train(cfg, quiet=True)
    (run,) = runs_dir.iterdir()
    assert not (run / "result.json").exists()
    assert _all_finite(run)


@pytest.fixture
def nan_loss(monkeypatch):
    """Register loss "nan-test": the non-saturating loss, except that D's loss is NaN on the calls
    listed in ``bad`` (1-based)."""
    calls = {"n": 0, "bad": set()}

    def d(*, real_logits, fake_logits):
        calls["n"] += 1
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        return loss * math.nan if calls["n"] in calls["bad"] else loss

    def g(*, fake_logits):
        return F.softplus(-fake_logits).mean()

    monkeypatch.setitem(LOSSES._items, "nan-test", AdversarialLoss(d, g, probabilistic=True,
                                                                    wasserstein_estimate=False))
    return calls


def test_persistent_nan_raises_and_no_nan_checkpoint(make_cfg, runs_dir, nan_loss):
    nan_loss["bad"] = set(range(3, 10 ** 6))  # every D step from the third on
    cfg = make_cfg("loss.name=nan-test", "train.steps=10", "train.log_every=1", "train.ckpt_every=1",
                   "train.nan_retries=1")
    with pytest.raises(TrainingDiverged, match="gave up after 1 rollback"):
        train(cfg, quiet=True)
    (run,) = runs_dir.iterdir()
    steps = [int(c.name.split("-")[1]) for c in list_checkpoints(run / "checkpoints")]
    assert steps and max(steps) <= 2  # nothing written once the weights were NaN
    assert _all_finite(run)
    events = [r["event"] for r in read_metrics(run) if "event" in r]
    assert len(events) == 1 and "rolled back" in events[0]


def test_transient_nan_rolls_back_and_finishes(make_cfg, nan_loss):
    nan_loss["bad"] = {4}
    cfg = make_cfg("loss.name=nan-test", "train.steps=6", "train.log_every=1", "train.ckpt_every=2",
                   "train.nan_retries=2", "train.nan_lr_scale=0.5")
    run = train(cfg, quiet=True)
    assert _result(run)["step"] == 6
    assert _all_finite(run)
    events = [r for r in read_metrics(run) if "event" in r]
    assert len(events) == 1 and events[0]["step"] == 2  # back to the step-2 checkpoint
    _, extra, _ = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert extra["opt_d"]["param_groups"][0]["lr"] == pytest.approx(cfg.optim.lr_d * 0.5)


def test_rollbacks_after_a_resume_keep_lowering_the_learning_rate(make_cfg, nan_loss):
    """The rollback count and the learning-rate scale are checkpointed: a rollback after a resume
    lowers the rate further instead of starting again from the configured one."""
    from ganforge.session import resume
    nan_loss["bad"] = {4}
    cfg = make_cfg("loss.name=nan-test", "train.steps=6", "train.log_every=1", "train.ckpt_every=2",
                   "train.nan_retries=3", "train.nan_lr_scale=0.5")
    run = train(cfg, quiet=True)
    _, extra, _ = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert extra["lr_scale"] == {"value": 0.5, "rollbacks": 1}
    nan_loss["n"], nan_loss["bad"] = 0, {4}  # the second D call after the resume is NaN again
    resume(run, ["train.steps=12"], quiet=True)
    _, extra, _ = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert extra["step"] == 12 and extra["lr_scale"] == {"value": 0.25, "rollbacks": 2}
    assert extra["opt_d"]["param_groups"][0]["lr"] == pytest.approx(cfg.optim.lr_d * 0.25)
    assert extra["opt_g"]["param_groups"][0]["lr"] == pytest.approx(cfg.optim.lr_g * 0.25)
    events = [r["event"] for r in read_metrics(run) if "event" in r]
    assert len(events) == 2 and "x0.25" in events[1] and "rollback 2 of 3" in events[1]


def test_throughput_stays_positive_after_a_rollback(make_cfg, nan_loss):
    nan_loss["bad"] = {4}
    run = train(make_cfg("loss.name=nan-test", "train.steps=6", "train.log_every=1", "train.ckpt_every=2"),
                quiet=True)
    rates = [r["img/s"] for r in read_metrics(run) if isinstance(r.get("img/s"), float)]
    assert len(rates) >= 6
    assert all(r > 0 for r in rates)


# -- (c) exact resume ---------------------------------------------------------------------------

RESUME = ("train.deterministic=true", "train.ema=0.9", "train.n_critic=2", "loss.penalties={gp: 1.0}",
          "model.d.dropout=0.2", "train.steps=12", "train.log_every=6", "train.ckpt_every=0")


def test_resume_is_bit_identical(train_tiny):
    full = train_tiny(*RESUME)
    half = train_tiny(*RESUME, "train.steps=6")
    assert _result(half)["step"] == 6
    resume(half, ["train.steps=12"], quiet=True)
    assert _result(half)["step"] == 12

    a_nets, a_extra, _ = load_checkpoint(latest_checkpoint(full / "checkpoints"))
    b_nets, b_extra, _ = load_checkpoint(latest_checkpoint(half / "checkpoints"))
    assert set(a_nets) == set(b_nets) == {"G", "D", "G_ema"}
    for net in a_nets:
        assert a_nets[net].keys() == b_nets[net].keys()
        for k in a_nets[net]:
            assert torch.equal(a_nets[net][k], b_nets[net][k]), f"{net}.{k}"
    assert (a_extra["step"], a_extra["d_steps"]) == (b_extra["step"], b_extra["d_steps"]) == (12, 24)
    for opt in ("opt_g", "opt_d"):
        for i, s in a_extra[opt]["state"].items():
            for k, v in s.items():
                assert torch.equal(v, b_extra[opt]["state"][i][k]), f"{opt}[{i}].{k}"
    # the logged losses at step 12 agree exactly too
    la = [r for r in read_metrics(full) if r["step"] == 12][0]
    lb = [r for r in read_metrics(half) if r["step"] == 12][0]
    assert la["loss/D"] == lb["loss/D"] and la["loss/G"] == lb["loss/G"]
    # and the weights did change between step 6 and step 12 (the comparison is not vacuous)
    half_only = train_tiny(*RESUME, "train.steps=6")
    h_nets, _, _ = load_checkpoint(latest_checkpoint(half_only / "checkpoints"))
    assert any(not torch.equal(h_nets["G"][k], a_nets["G"][k]) for k in h_nets["G"])


# -- (d) sampling a finished run ----------------------------------------------------------------

def test_load_sample_is_seeded(train_tiny):
    run = train_tiny("train.ema=0")  # vanilla keeps an EMA at its CPU size; this run has none
    g = ganforge.load(run)
    a, b, c = g.sample(16, seed=0), g.sample(16, seed=0), g.sample(16, seed=1)
    assert a.shape == (16, 2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the promise: the same latents; images equal up to float rounding (the CPU's kernels may
    # differ with the batch size, e.g. oneDNN on AVX-512), never bit equality across batch sizes
    assert torch.equal(g.latent(4, seed=0), g.latent(16, seed=0)[:4])
    torch.testing.assert_close(g.sample(4, seed=0), a[:4], rtol=1e-4, atol=1e-5)
    assert not g.ema
    with pytest.raises(ganforge.checkpoint.CheckpointError, match="EMA"):
        ganforge.load(run, ema=True)


def test_load_uses_ema_weights_when_kept(train_tiny):
    run = train_tiny("train.ema=0.5", "train.steps=4")
    nets = _final_nets(run)
    g = ganforge.load(run)
    assert g.ema
    sd = g.net.state_dict()
    assert all(torch.equal(sd[k], nets["G_ema"][k]) for k in sd)
    assert any(not torch.equal(nets["G_ema"][k], nets["G"][k]) for k in nets["G"])
    raw = ganforge.load(run, ema=False)
    assert not raw.ema
    assert not torch.equal(g.sample(8, seed=3), raw.sample(8, seed=3))
