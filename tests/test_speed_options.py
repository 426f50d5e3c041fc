"""Speed options: train.compile trains and checkpoints plain weights; train.amp=bf16 and channels_last
run on a CPU with bf16 instructions, what a device cannot speed up is refused with a one-line warning
(fp32 stays exactly fp32); the fp16 gradient scalers' state goes through a checkpoint."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from ganforge.checkpoint import latest_checkpoint, load_checkpoint
from ganforge.config import ConfigError
from ganforge.reporting import Reporter
from ganforge.loop import build_state, train_step
from ganforge.checkpoint import restore_run as restore, save_run as save
from ganforge.session import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _final(run) -> dict:
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))[0]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[n][k].double() - b[n][k].double()).abs().max().item() for n in a for k in a[n])


def _have_cxx() -> bool:
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


@pytest.mark.skipif(not _have_cxx(), reason="torch.compile (inductor) needs a C++ compiler on the CPU; none found")
def test_compile_trains_and_checkpoints_plain_weights(train_tiny, capsys):
    import time
    t0 = time.perf_counter()
    sgd = ("optim.name=sgd", "optim.lr_g=0.05", "optim.lr_d=0.05")  # Adam's first steps amplify rounding
    run = train_tiny("train.compile=true", "train.steps=2", "train.log_every=1", *sgd)
    seconds = time.perf_counter() - t0
    nets = _final(run)
    assert all(not k.startswith(("_orig_mod", "module", "net.net")) for sd in nets.values() for k in sd)
    plain = _final(train_tiny("train.steps=2", "train.log_every=1", *sgd))
    assert nets["G"].keys() == plain["G"].keys() and nets["D"].keys() == plain["D"].keys()
    diff = _max_diff(nets, plain)
    with capsys.disabled():
        print(f"\ncompile: 2 steps in {seconds:.0f} s (compilation included); max |dW| vs eager {diff:.2g}")
    assert diff < 1e-5  # the same training, up to the compiler's float reassociation


def test_compile_leaves_d_uncompiled_for_double_backward_penalties(make_cfg, capsys):
    state = build_state(make_cfg("train.compile=true", "loss.penalties={gp: 1.0}"))
    err = capsys.readouterr().err
    assert "D phase runs D uncompiled" in err and len(err.strip().splitlines()) == 1
    assert state.D_view is None and state.G_view is not None and state.D_frozen_view is not None


def test_fp16_on_the_cpu_and_bf16_without_bf16_instructions_warn_once_and_keep_fp32(train_tiny, capsys, monkeypatch):
    from ganforge import runtime
    plain = _final(train_tiny("train.steps=3"))
    monkeypatch.setattr(runtime, "cpu_native_bf16", lambda: False)
    for amp, warning in (("fp16", "warning: train.amp=fp16 is ignored on cpu (no fast fp16 there; bf16 is, on CPUs "
                                   "with AMX or AVX512-BF16); training in fp32"),
                         ("bf16", "warning: train.amp=bf16 is ignored: this CPU has no bf16 instructions (AVX512-BF16 "
                                  "or AMX), so bf16 would be slower than fp32 here; training in fp32")):
        capsys.readouterr()
        run = train_tiny(f"train.amp={amp}", "train.steps=3")
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
        assert lines == [warning]
        nets = _final(run)
        assert all(v.dtype == torch.float32 for sd in nets.values() for v in sd.values() if v.is_floating_point())
        assert _max_diff(nets, plain) == 0.0  # exactly the fp32 run


def _record_conv_dtypes(state) -> list:
    seen = []
    for m in state.D.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda mod, inp, out: seen.append((out.dtype, inp[0].is_contiguous(
                memory_format=torch.channels_last))))
    return seen


def test_bf16_and_channels_last_on_a_cpu_with_bf16_instructions(make_cfg, image_dataset, monkeypatch, capsys):
    """Where the CPU has bf16 instructions, train.amp=bf16 runs the forward passes in bf16 (the
    weights, their gradients and the checkpoint stay fp32) and channels_last stores conv weights
    and batches as NHWC; the run trains close to the fp32 one. (bf16 is emulated on other CPUs, so
    the test runs everywhere.)"""
    from ganforge import runtime
    monkeypatch.setattr(runtime, "cpu_native_bf16", lambda: True)
    dcgan = ("model.arch=dcgan", f"data.name={image_dataset()}", "model.g={width: 8}", "model.d={width: 8}",
             "model.z_dim=8", "train.batch_size=16")
    plain = build_state(make_cfg(*dcgan, "train.amp=off", "train.channels_last=off"))
    fast = build_state(make_cfg(*dcgan, "train.amp=bf16", "train.channels_last=true"))
    assert not [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    seen = _record_conv_dtypes(fast)
    convs = [p for n, p in fast.D.named_parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    rp, rf = Reporter(), Reporter()
    for _ in range(3):
        train_step(plain, rp)
        train_step(fast, rf)
    assert seen and all(dtype == torch.bfloat16 for dtype, _ in seen)  # the convs computed in bf16
    assert all(nhwc for _, nhwc in seen)
    assert all(p.dtype == torch.float32 for p in [*fast.G.parameters(), *fast.D.parameters()])
    a, b = rp.flush(), rf.flush()
    assert math.isfinite(b["loss/D"]) and abs(a["loss/D"] - b["loss/D"]) < 0.05 * max(1.0, abs(a["loss/D"]))
    diff = max((p - q).abs().max().item() for p, q in zip(plain.G.parameters(), fast.G.parameters()))
    assert 0 < diff < 1e-2  # three Adam steps (lr 2e-4 each) apart: bf16 rounding, nothing more


def test_amp_values_are_checked(make_cfg):
    with pytest.raises(ConfigError, match="train.amp: unknown value 'fp8'"):
        make_cfg("train.amp=fp8")
    with pytest.raises(ConfigError, match="train.amp=fp16 cannot be combined with loss.penalties"):
        make_cfg("train.amp=fp16", "loss.penalties={r1: 1.0}")
    make_cfg("train.amp=bf16", "loss.penalties={r1: 1.0}")


def test_cpu_native_bf16_reads_the_cpu_flags():
    """The real check (not patched) agrees with what the kernel reports for this CPU."""
    from conftest import REAL_CPU_NATIVE_BF16
    try:
        flags = next(ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")).split()
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo flags on this system")
    assert REAL_CPU_NATIVE_BF16() == bool({"avx512_bf16", "amx_tile"} & set(flags))


@pytest.mark.parametrize("native", [False, True])
def test_auto_speed_options_follow_the_cpu_and_the_data_and_are_recorded(make_cfg, train_tiny, image_dataset,
                                                                       monkeypatch, capsys, native):
    """amp / channels_last ``auto`` (the defaults) become bf16 / on for images on a CPU with bf16
    instructions and off elsewhere (and for 2-D points on any CPU); config.yaml records the resolved
    values, the first lines say what auto chose, and values the user sets are kept."""
    import yaml
    from ganforge import runtime
    from ganforge.session import train
    monkeypatch.setattr(runtime, "cpu_native_bf16", lambda: native)
    images = ("model.arch=dcgan", f"data.name={image_dataset()}", "model.g={width: 8}", "model.d={width: 8}",
              "model.z_dim=8", "train.batch_size=8", "train.steps=2")
    run = train(make_cfg(*images))  # not quiet: the first lines are printed
    out = capsys.readouterr().out
    saved = yaml.safe_load((run / "config.yaml").read_text())["train"]
    assert (saved["amp"], saved["channels_last"]) == (("bf16", "on") if native else ("off", "off"))
    assert ("bf16 autocast and channels_last (auto: this CPU has bf16 instructions" in out) == native
    kept = yaml.safe_load((train_tiny(*images, "train.amp=off") / "config.yaml").read_text())["train"]
    assert kept["amp"] == "off" and kept["channels_last"] == ("on" if native else "off")
    points = yaml.safe_load((train_tiny() / "config.yaml").read_text())["train"]  # ring8: 2-D points
    assert points["amp"] == "off" and points["channels_last"] == "off"


def _scaled(state, init_scale: float = 2.0 ** 10):
    """Turn on the gradient scalers (fp16's; on the CPU with fp32 maths, to test the loop's use)."""
    state.scaler_g = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=2)
    state.scaler_d = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=3)
    return state


def test_loss_scaling_leaves_fp32_training_unchanged(make_cfg):
    """With power-of-two scales, scaling the loss and unscaling the gradients is exact: the scaled
    loop must give the same weights and gradient norms as the plain one."""
    plain, scaled = build_state(make_cfg()), _scaled(build_state(make_cfg()))
    rp, rs = Reporter(), Reporter()
    for _ in range(5):
        train_step(plain, rp)
        train_step(scaled, rs)
    a, b = rp.flush(), rs.flush()
    assert a["grad/D"] == b["grad/D"] and a["grad/G"] == b["grad/G"]
    for p, q in zip([*plain.G.parameters(), *plain.D.parameters()], [*scaled.G.parameters(), *scaled.D.parameters()]):
        assert torch.equal(p, q)
    assert scaled.scaler_g.get_scale() == 2.0 ** 12  # grew twice (growth_interval 2, no overflow)


def test_gradient_scaler_state_round_trips_through_a_checkpoint(make_cfg, tmp_path):
    state = _scaled(build_state(make_cfg()))
    rep = Reporter()
    for _ in range(4):
        train_step(state, rep)
    ckpt = save(state, tmp_path)
    _, extra, _ = load_checkpoint(ckpt)
    assert extra["scaler_g"]["scale"] == 2.0 ** 12 and extra["scaler_d"]["_growth_tracker"] == 1

    fresh = _scaled(build_state(make_cfg()), init_scale=1.0)
    restore(fresh, ckpt)
    for name in ("scaler_g", "scaler_d"):
        assert getattr(fresh, name).state_dict() == getattr(state, name).state_dict()
    # the same continuation: one more step each
    train_step(state, rep)
    train_step(fresh, Reporter())
    assert all(torch.equal(p, q) for p, q in zip(state.G.parameters(), fresh.G.parameters()))

    # a checkpoint without loss scaling (empty scaler state) loads into a run with it, and back
    plain = build_state(make_cfg())
    plain_ckpt = save(plain, tmp_path / "plain")
    _, extra, _ = load_checkpoint(plain_ckpt)
    assert extra["scaler_g"] == {}
    restore(_scaled(build_state(make_cfg())), plain_ckpt)
    restore(build_state(make_cfg()), ckpt)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # the skipped first step
def test_grad_norm_stays_on_the_device_and_overflow_is_not_divergence(make_cfg, monkeypatch):
    """The loop's statistics are tensors (read once per log step); with loss scaling, a step whose
    gradients overflow is skipped and its gradient norm reported as 0, not Inf."""
    import torch.nn.functional as F
    from ganforge.losses import LOSSES, AdversarialLoss

    def d(*, real_logits, fake_logits):  # gradients ~1e3: times the scale below, beyond fp32
        return 1e3 * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())

    def g(*, fake_logits):
        return 1e3 * F.softplus(-fake_logits).mean()

    big = AdversarialLoss(d, g, probabilistic=True, wasserstein_estimate=False)
    monkeypatch.setitem(LOSSES._items, "big-test", big)
    state = _scaled(build_state(make_cfg("loss.name=big-test")), init_scale=2.0 ** 126)
    rep = Reporter()
    before = [p.detach().clone() for p in state.D.parameters()]
    train_step(state, rep)
    assert all(isinstance(v[0], torch.Tensor) for v in rep.values.values())
    stats = rep.flush()
    assert stats["grad/D"] == 0.0 and stats["grad/G"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, state.D.parameters()))  # the step was skipped
    assert state.scaler_d.get_scale() == 2.0 ** 125  # and the scale backed off
