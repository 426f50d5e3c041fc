"""Benchmarks (not tests): ``ganforge bench toy|speed|quality|floor|soak|reliability``.

Each prints the exact command, settings, seeds, torch version, threads and wall time beside its
numbers, and a Markdown table ready for BENCHMARKS.md.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import __version__

# Settings for the 2-D mixtures (PROTOCOLS.md section 1), on top of each preset: MLP nets sized
# for 2-D data, large batches, and an EMA of G for the final samples.
TOY_COMMON = [
    "model.arch=mlp", "model.z_dim=8", "model.g.hidden=64", "model.d.hidden=128",
    "train.batch_size=256", "train.ema=0.999", "optim.schedule=linear", "optim.lr_g=1e-3", "optim.lr_d=1e-3",
    "train.log_every=500", "train.sample_every=0", "train.ckpt_every=0", "train.keep_ckpts=1",
    "train.progress=false",
]
TOY_PRESET = {
    "vanilla": ["train.steps=8000"],
    "wgan-gp": ["train.steps=4000", "optim.betas=[0.5,0.9]"],
    "hinge": ["train.steps=10000", "model.d.sn=true", "train.n_critic=2"],
    "pacgan": ["train.steps=8000"],  # vanilla's budget with D judging packs of 2
    "sngan": ["train.steps=4000", "model.d.sn=true", "optim.betas=[0.0,0.9]"],  # n_critic 5 from the preset
}
TOY_EVAL_SAMPLES = 2500


def _env() -> str:
    return (f"ganforge {__version__}, torch {torch.__version__}, python {platform.python_version()}, "
            f"threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}")


def toy(presets, datasets, seeds, steps=None, out="runs/bench", extra=()) -> list[dict]:
    from .api import load
    from .config import resolve
    from .data.toy import MIXTURES
    from .metrics.modes import mode_metrics
    from .train import train

    rows = []
    for ds in datasets:
        mixture = MIXTURES[ds]()
        for preset in presets:
            overrides = TOY_COMMON + TOY_PRESET.get(preset, []) + [f"data.name={ds}", f"out={out}"] + list(extra)
            if steps:
                overrides.append(f"train.steps={steps}")
            for seed in seeds:
                cfg = resolve(preset, overrides=overrides + [f"seed={seed}"])
                t0 = time.perf_counter()
                cpu0 = time.process_time()
                run = train(cfg, quiet=True)
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                g = load(run)
                x = g.sample(TOY_EVAL_SAMPLES, seed=10_000 + seed)
                m = mode_metrics(x, mixture.means, mixture.std)
                row = {"dataset": ds, "preset": preset, "seed": seed, "steps": cfg.train.steps,
                       "modes": int(m["modes"]), "K": len(mixture.means), "hq": 100 * float(m["hq_fraction"]),
                       "reverse_kl": float(m["reverse_kl"]), "wall_s": wall, "cpu_s": cpu, "run": str(run)}
                rows.append(row)
                print(f"{ds:7s} {preset:8s} seed {seed}: modes {row['modes']}/{row['K']}, HQ {row['hq']:.1f} %, "
                      f"reverse KL {row['reverse_kl']:.3f}, {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    return rows


def _mean_std(v):
    return (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0)


def toy_table(rows) -> str:
    lines = ["| dataset | preset | steps | modes | % HQ | reverse KL | wall s / run | seeds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    keys = sorted({(r["dataset"], r["preset"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for ds, preset in keys:
        rs = [r for r in rows if r["dataset"] == ds and r["preset"] == preset]
        m, h, k, w = (_mean_std([r[f] for r in rs]) for f in ("modes", "hq", "reverse_kl", "wall_s"))
        lines.append(f"| {ds} | {preset} | {rs[0]['steps']} | {m[0]:.2f} ± {m[1]:.2f} / {rs[0]['K']} | "
                     f"{h[0]:.1f} ± {h[1]:.1f} | {k[0]:.3f} ± {k[1]:.3f} | {w[0]:.0f} | "
                     f"{','.join(str(r['seed']) for r in rs)} |")
    return "\n".join(lines)


# -- speed -----------------------------------------------------------------------------------

def speed(presets, batch: int = 64, steps: int = 20, repeats: int = 5, data: str = "fashion-mnist",
          gen_batch: int = 256) -> list[dict]:
    """Training iterations/s, FLOPs and GFLOP/s against an honest matmul ceiling, and sampling
    throughput (G alone, eval mode, ``gen_batch`` images per call), per preset.

    The ceiling is the best fp32 matmul rate at this process's thread count over square products
    and over the GEMM shapes that the preset's convolutions and linear layers amount to (im2col
    view: forward, weight-gradient and input-gradient products), so a preset cannot beat it by
    running shapes the square products do not represent."""
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from .config import resolve
    from .train import Reporter, build_state, seeded_sampler, train_step

    def gemm_shapes(state, top: int = 6) -> list[tuple[int, int, int]]:
        """(M, K, N) of the products behind one training iteration's layers, by FLOPs, largest first."""
        flops: dict[tuple[int, int, int], int] = {}

        def hook(m, inputs, out):
            x = inputs[0]
            if isinstance(m, nn.Linear):
                mkn = (x.numel() // x.shape[-1], m.in_features, m.out_features)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and x.dim() == 4:
                area = m.kernel_size[0] * m.kernel_size[1]
                if isinstance(m, nn.Conv2d):  # (B*Ho*Wo, Cin/g*k*k) @ (Cin/g*k*k, Cout)
                    mkn = (out.shape[0] * out.shape[2] * out.shape[3], m.in_channels // m.groups * area, m.out_channels)
                else:  # (B*H*W, Cin/g) @ (Cin/g, Cout*k*k), then col2im
                    mkn = (x.shape[0] * x.shape[2] * x.shape[3], m.in_channels // m.groups, m.out_channels * area)
            else:
                return
            M, K, N = mkn
            for shape in ((M, K, N), (K, M, N), (M, N, K)):  # forward, weight gradient, input gradient
                flops[shape] = flops.get(shape, 0) + 2 * M * K * N

        handles = [m.register_forward_hook(hook) for net in (state.G, state.D) for m in net.modules()]
        try:
            train_step(state, Reporter())
        finally:
            for h in handles:
                h.remove()
        return sorted(flops, key=flops.get, reverse=True)[:top]

    def matmul_rate(M: int, K: int, N: int, reps: int = 5, min_s: float = 0.02) -> float:
        """Best fp32 GFLOP/s of (M, K) @ (K, N) over ``reps`` timings of >= ``min_s`` each."""
        a, b = torch.randn(M, K), torch.randn(K, N)
        t0 = time.perf_counter()
        a @ b  # warm-up, and the size of one timing
        inner = max(1, int(min_s / max(time.perf_counter() - t0, 1e-7)))
        best = 0.0
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(inner):
                a @ b
            best = max(best, 2 * M * K * N * inner / (time.perf_counter() - t0) / 1e9)
        return best

    def ceiling(shapes) -> tuple[float, str]:
        rates = {f"{M}x{K}x{N}": matmul_rate(M, K, N) for M, K, N in shapes}
        best = max(rates, key=rates.get)
        return rates[best], best

    @torch.no_grad()
    def sampling_rate(state, cfg) -> float:
        """Images/s of G alone in eval mode (latents and labels drawn per call), median of repeats."""
        net = state.sampler_net
        net.eval()
        try:
            sample = seeded_sampler(net, cfg, state.device, state.data.num_classes)
            sample(gen_batch, 0)  # warm-up
            rates = []
            for r in range(repeats):
                t0 = time.perf_counter()
                for i in range(3):
                    sample(gen_batch, 1 + 3 * r + i)
                rates.append(3 * gen_batch / (time.perf_counter() - t0))
            return statistics.median(rates)
        except (RuntimeError, TypeError, ValueError):  # image-to-image G: no latent-only sampling
            return float("nan")
        finally:
            net.train()

    threads = torch.get_num_threads()
    square, square_shape = ceiling([(n, n, n) for n in (512, 1024, 2048, 4096)])
    print(f"fp32 matmul ceiling, square products at {threads} threads: {square:.1f} GFLOP/s ({square_shape})",
          flush=True)
    rows = []
    for preset in presets:
        cfg = resolve(preset, overrides=[f"data.name={data}", f"train.batch_size={batch}",
                                         "train.progress=false"])
        state = build_state(cfg)
        rep = Reporter()
        for _ in range(3):  # warm-up
            train_step(state, rep)
        try:
            with FlopCounterMode(display=False) as fc:
                train_step(state, rep)
            flops = fc.get_total_flops()
        except RuntimeError:  # the counter cannot follow autograd.grad (gradient penalties)
            flops = float("nan")
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(steps):
                train_step(state, rep)
            rep.flush()
            dt = time.perf_counter() - t0
            rates.append(steps / dt)
        it_s = statistics.median(rates)
        img_s = it_s * batch * cfg.train.n_critic
        gen_s = sampling_rate(state, cfg)
        layer, layer_shape = ceiling(gemm_shapes(state))
        ceil, ceil_shape = (layer, layer_shape) if layer > square else (square, square_shape)
        row = {"preset": preset, "batch": batch, "n_critic": cfg.train.n_critic, "iter_per_s": it_s,
               "real_img_per_s": img_s, "gen_batch": gen_batch, "gen_img_per_s": gen_s,
               "gflop_per_iter": flops / 1e9, "gflop_s": flops * it_s / 1e9, "threads": threads,
               "ceiling_gflop_s": ceil, "ceiling_shape": ceil_shape, "square_ceiling_gflop_s": square,
               "layer_ceiling_gflop_s": layer, "layer_ceiling_shape": layer_shape,
               "fraction_of_ceiling": flops * it_s / 1e9 / ceil}
        rows.append(row)
        print(f"{preset:10s} {it_s:6.2f} it/s, {img_s:7.0f} real img/s, {flops / 1e9:.2f} GFLOP/iter, "
              f"{row['gflop_s']:.1f} GFLOP/s ({100 * row['fraction_of_ceiling']:.0f} % of the {ceil:.0f} GFLOP/s "
              f"ceiling, {ceil_shape}; its layers' own GEMM shapes reach {layer:.0f}); "
              f"sampling {gen_s:.0f} img/s at batch {gen_batch}", flush=True)
    return rows


def speed_table(rows) -> str:
    lines = ["| preset | batch | n_critic | iterations/s | real images/s | GFLOP / iteration | GFLOP/s | "
             "matmul ceiling GFLOP/s (shape) | % of ceiling | sampling images/s (batch) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        counted = r["gflop_per_iter"] == r["gflop_per_iter"]  # NaN where the counter cannot follow
        ceiling = f"{r['ceiling_gflop_s']:.0f} ({r['ceiling_shape']})"
        flops = (f"{r['gflop_per_iter']:.2f} | {r['gflop_s']:.1f} | {ceiling} | {100 * r['fraction_of_ceiling']:.0f} %"
                 if counted else f"not countable (autograd.grad) | – | {ceiling} | –")
        gen = r.get("gen_img_per_s", float("nan"))
        gen = f"{gen:.0f} ({r.get('gen_batch', '')})" if gen == gen else "–"
        lines.append(f"| {r['preset']} | {r['batch']} | {r['n_critic']} | {r['iter_per_s']:.2f} | "
                     f"{r['real_img_per_s']:.0f} | {flops} | {gen} |")
    return "\n".join(lines)


# -- Fashion-MNIST quality at fixed CPU budgets (PROTOCOLS.md section 3) -------------------

QUALITY_METRICS = "fid,kid,pr,dc,is"


def train_for_cpu(state, rep, seconds: float, spent: float = 0.0) -> float:
    """Train ``state`` until this process's CPU time spent on training reaches ``seconds`` (from
    ``spent`` already used); returns the total. Only ``train_step`` is timed, so evaluation
    between budgets is not counted."""
    from .train import train_step
    while spent < seconds:
        c0 = time.process_time()
        train_step(state, rep)
        spent += time.process_time() - c0
        if state.step % 200 == 0:
            rep.flush()
    return spent


def quality(presets, budgets_min=(2, 5, 10, 20), n: int = 10000, seed: int = 0,
            extra: list[str] | None = None) -> list[dict]:
    """Train each preset on Fashion-MNIST and evaluate it when its process CPU time passes each
    budget (evaluation time is not counted). 10k generated vs the 10k test images."""
    from .config import resolve
    from .evaluate import evaluate_generator
    from .features import get_feature_extractor
    from .train import Reporter, build_state, seeded_sampler, train_step

    ext = get_feature_extractor("fmnist")
    rows = []
    for preset in presets:
        cfg = resolve(preset, overrides=["data.name=fashion-mnist", f"seed={seed}", "train.progress=false",
                                         "train.steps=100000000"] + list(extra or []))
        state = build_state(cfg)
        rep = Reporter()
        cpu = 0.0
        t_wall = time.perf_counter()
        for budget in sorted(budgets_min):
            cpu = train_for_cpu(state, rep, budget * 60, spent=cpu)
            net = state.sampler_net
            sample = seeded_sampler(net, state.cfg, state.device, state.data.num_classes)
            net.eval()
            out = evaluate_generator(sample, metrics=QUALITY_METRICS, n=n, ref="fashion-mnist:test",
                                     extractor=ext, seed=seed, progress=False)
            net.train()
            r = out["results"]
            row = {"preset": preset, "budget_cpu_min": budget, "step": state.step, "seed": seed,
                   "wall_min": (time.perf_counter() - t_wall) / 60, **r}
            rows.append(row)
            print(f"{preset:8s} {budget:>3g} CPU-min (step {state.step}): FID {r['fid']:.2f}, "
                  f"KID {r['kid_mean']:.4f}, P {r['precision']:.3f}, R {r['recall']:.3f}, "
                  f"D {r['density']:.3f}, C {r['coverage']:.3f}, IS {r['is_mean']:.2f}", flush=True)
    return rows


def floor(n: int = 10000, seed: int = 0) -> dict:
    """Real Fashion-MNIST train images vs the test split through the same pipeline, and the time
    the pipeline takes for 10k vs 10k (features + FID + KID + P/R + D/C)."""
    from .data.images import load_split
    from .evaluate import compute, parse_metrics, reference_features
    from .features import get_feature_extractor

    ext = get_feature_extractor("fmnist")
    t0 = time.perf_counter()
    real_f, _, _ = reference_features("fashion-mnist:test", ext, cache=False)
    train_x, _ = load_split("fashion-mnist", "train")
    idx = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))[:n]
    t1 = time.perf_counter()
    fake_f, fake_p = ext.extract(train_x[idx])
    t2 = time.perf_counter()
    r = compute(parse_metrics(QUALITY_METRICS), real_f, fake_f, fake_p, seed=seed)
    t3 = time.perf_counter()
    timing = {"features_20k_s": (t1 - t0) + (t2 - t1), "metrics_s": t3 - t2, "total_s": t3 - t0}
    print(f"floor (10k train vs 10k test): " + ", ".join(f"{k} {v:.4g}" for k, v in r.items()))
    print(f"time: features for 20k images {timing['features_20k_s']:.1f} s, FID+KID+P/R+D/C+IS "
          f"{timing['metrics_s']:.1f} s, total {timing['total_s']:.1f} s")
    return {**r, **timing}


def quality_table(rows, floor_row=None) -> str:
    lines = ["| preset | CPU-min | step | FID | KID | precision | recall | density | coverage | IS |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['budget_cpu_min']} | {r['step']} | {r['fid']:.2f} | {r['kid_mean']:.4f} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} | {r['density']:.3f} | {r['coverage']:.3f} | {r['is_mean']:.2f} |")
    if floor_row:
        r = floor_row
        lines.append(f"| real train (floor) | – | – | {r['fid']:.2f} | {r['kid_mean']:.4f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['density']:.3f} | {r['coverage']:.3f} | {r['is_mean']:.2f} |")
    return "\n".join(lines)


# -- soak: memory over a long CPU run (issue "reliability and security") ---------------------

#: Overrides of the soak's training child on top of the preset (``--set`` extras go after these).
#: Samples and checkpoints at a cadence that puts their I/O into the soak (about every 1-2 min).
SOAK_COMMON = ["train.threads=1", "train.progress=false", "train.steps=1000000000", "train.log_every=50",
               "train.sample_every=500", "train.ckpt_every=500", "train.keep_ckpts=3"]


def _proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (MB) of a live process from /proc/PID/status ({} once it has exited)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(line.split()[1]) / 1024  # kB -> MB
    except OSError:
        return {}
    return out


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process (fields 14 and 15 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def slope_per_hour(t_s, y) -> float:
    """Least-squares slope of ``y`` against time in seconds, per hour (NaN with < 2 distinct times)."""
    n = len(t_s)
    if n < 2:
        return float("nan")
    mt, my = sum(t_s) / n, sum(y) / n
    var = sum((t - mt) ** 2 for t in t_s)
    if var == 0:
        return float("nan")
    return 3600.0 * sum((t - mt) * (v - my) for t, v in zip(t_s, y)) / var


def _train_argv(preset: str | None, overrides) -> list[str]:
    argv = [sys.executable, "-m", "ganforge", "train"] + ([preset] if preset else [])
    for o in overrides:
        argv += ["--set", o]
    return argv


def _quote(argv) -> str:
    import shlex
    a = list(argv)
    if a[:3] == [sys.executable, "-m", "ganforge"]:
        a = ["ganforge"] + a[3:]
    return " ".join(shlex.quote(str(x)) for x in a)


def soak(minutes: float = 30.0, preset: str = "dcgan", extra=(), seed: int = 0, out: str = "runs/bench",
         interval: float | None = None, warmup: float = 0.1) -> dict:
    """Train ``preset`` in a child process for ``minutes`` of wall time and sample its RSS.

    The child is the real CLI (``ganforge train ... --set train.max_minutes=M``) with one torch
    thread, periodic samples and checkpoints. RSS (``VmRSS``) is read from /proc every
    ``interval`` seconds (default: ~1/150 of the run, within 0.2-5 s). Samples taken once the
    run's result.json exists (the child is exiting) are kept apart. The first ``warmup`` fraction
    of the training samples' time span is warm-up; start/end/slope are over the rest.
    """
    import tempfile

    Path(out).mkdir(parents=True, exist_ok=True)
    parent = Path(tempfile.mkdtemp(prefix="soak-", dir=out))
    overrides = [f"out={parent}", f"seed={seed}", f"train.max_minutes={minutes:g}"] + SOAK_COMMON + list(extra)
    argv = _train_argv(preset, overrides)
    if interval is None:
        interval = min(5.0, max(0.2, minutes * 60 / 150))
    samples: list[tuple[float, float, float | None]] = []  # (t since start, RSS MB, child CPU s)
    after: list[tuple[float, float]] = []  # samples once result.json exists: the child is shutting down
    hwm = 0.0
    with open(parent / "train.log", "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            done = any((p / "result.json").exists() for p in parent.iterdir() if p.is_dir())
            st, cpu = _proc_status(proc.pid), _proc_cpu_s(proc.pid)
            if "VmRSS" in st:
                t = time.perf_counter() - t0
                if done:
                    after.append((t, st["VmRSS"]))
                else:
                    samples.append((t, st["VmRSS"], cpu))
                hwm = max(hwm, st.get("VmHWM", 0.0))
            time.sleep(interval)
        wall = time.perf_counter() - t0
    text = (parent / "train.log").read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"soak child exited with {proc.returncode}:\n{text[-3000:]}")
    runs = [p for p in parent.iterdir() if p.is_dir()]
    run = runs[0]
    result = json.loads((run / "result.json").read_text())
    if len(samples) < 3:
        raise RuntimeError(f"only {len(samples)} RSS samples: the run was too short to measure")
    t_end = samples[-1][0]
    post = [s for s in samples if s[0] >= warmup * t_end]
    half = [s for s in samples if s[0] >= 0.5 * t_end]
    ts, ys = [s[0] for s in post], [s[1] for s in post]
    cpus = [s[2] for s in samples if s[2] is not None]
    fit = slope_per_hour(ts, ys)
    fit = 0.0 if fit != fit else fit / 3600  # MB/s; NaN (too few samples) -> no trend
    resid = [y - (sum(ys) / len(ys) + fit * (t - sum(ts) / len(ts))) for t, y in zip(ts, ys)]
    edge = max(1, round(0.05 * len(ys)))
    row = {
        "preset": preset, "minutes": minutes, "seed": seed, "overrides": overrides, "command": _quote(argv),
        "wall_s": wall, "child_cpu_s": cpus[-1] if cpus else None, "steps": result["step"],
        "reason": result["reason"], "train_seconds": result["seconds"],
        "steps_per_s": result["step"] / max(result["seconds"], 1e-9),
        "sample_grids": len(list((run / "samples").glob("*.png"))) if (run / "samples").is_dir() else 0,
        "interval_s": interval, "n_samples": len(samples), "n_post_warmup": len(post),
        "warmup_s": warmup * t_end,
        # start / end: medians of the first / last 5 % of the post-warm-up samples (single readings
        # jitter by tens of MB as checkpoints and sample grids come and go)
        "rss_start_mb": statistics.median(ys[:edge]), "rss_end_mb": statistics.median(ys[-edge:]),
        "rss_peak_mb": max(s[1] for s in samples), "rss_post_min_mb": min(ys), "rss_post_max_mb": max(ys),
        "rss_post_median_mb": statistics.median(ys), "rss_residual_std_mb": statistics.pstdev(resid),
        "vm_hwm_mb": hwm, "slope_mb_per_h": slope_per_hour(ts, ys),
        "slope_2nd_half_mb_per_h": slope_per_hour([s[0] for s in half], [s[1] for s in half]),
        "run": str(run), "samples": [[round(t, 2), round(m, 2)] for t, m, _ in samples],
        "samples_after_training": [[round(t, 2), round(m, 2)] for t, m in after],
    }
    # the cadence actually used (a --set may have changed it)
    ck = [o.split("=", 1)[1] for o in overrides if o.startswith("train.ckpt_every=")]
    row["checkpoints_written"] = result["step"] // int(ck[-1]) + 1 if ck and int(ck[-1]) else 1
    print(f"soak {preset}: {row['steps']} steps in {row['train_seconds']:.0f} s ({row['reason']}), "
          f"RSS start {row['rss_start_mb']:.1f} MB (after {row['warmup_s']:.0f} s warm-up), end "
          f"{row['rss_end_mb']:.1f} MB, peak {row['rss_peak_mb']:.1f} MB, slope {row['slope_mb_per_h']:+.2f} MB/h "
          f"(second half {row['slope_2nd_half_mb_per_h']:+.2f} MB/h), {len(samples)} samples every {interval:g} s",
          flush=True)
    return row


def soak_table(row: dict) -> str:
    def f(v, fmt):
        return "–" if v is None or v != v else format(v, fmt)
    lines = ["| preset | wall min | child CPU min | steps | RSS start MB | RSS end MB | RSS peak MB | "
             "post-warm-up range MB | slope MB/h | slope 2nd half MB/h | samples |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
             f"| {row['preset']} | {row['wall_s'] / 60:.1f} | {f(row['child_cpu_s'] and row['child_cpu_s'] / 60, '.1f')} | "
             f"{row['steps']} | {row['rss_start_mb']:.1f} | {row['rss_end_mb']:.1f} | {row['rss_peak_mb']:.1f} | "
             f"{row['rss_post_min_mb']:.1f}–{row['rss_post_max_mb']:.1f} (median {row['rss_post_median_mb']:.1f}) | "
             f"{f(row['slope_mb_per_h'], '+.2f')} | {f(row['slope_2nd_half_mb_per_h'], '+.2f')} | "
             f"{row['n_samples']} x {row['interval_s']:g} s |"]
    return "\n".join(lines)


# -- reliability: resume equivalence, the kill -9 drill, bad inputs through the CLI ------------

#: Small deterministic image runs for (a) and (b): DCGAN-family nets of width 16 on 2,000
#: Fashion-MNIST images, one torch thread, deterministic algorithms.
RESUME_COMMON = ["data.name=fashion-mnist", "data.limit=2000", "model.g.width=16", "model.d.width=16",
                 "train.deterministic=true", "train.threads=1", "train.progress=false", "train.log_every=10",
                 "train.sample_every=0", "train.ckpt_every=0", "train.grid_size=16"]
#: name -> (preset, overrides); N = train.steps, stopped at N/2 and resumed to N.
RESUME_CASES = {
    "dcgan": ("dcgan", ["train.steps=200"]),
    "wgan-gp": ("wgan-gp", ["train.steps=60"]),  # the preset's n_critic 5 and GP lambda 10
    "hinge+ema+dropout": ("hinge", ["train.steps=200", "train.ema=0.999", "model.d.dropout=0.2"]),
}
DRILL_PRESET = "dcgan"
DRILL_K = 50
DRILL_STEPS = 400
DRILL_REPEATS = 3
DRILL_COMMON = RESUME_COMMON + ["train.keep_ckpts=3"]  # kill_drill adds train.steps, ckpt_every, log_every=1


def _run_cli(argv: list[str], timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise RuntimeError(f"`{_quote(argv)}` exited {res.returncode}:\n{res.stderr[-3000:]}")
    return res


def _only_run(parent: Path) -> Path:
    runs = sorted(p for p in Path(parent).iterdir() if p.is_dir())
    if len(runs) != 1:
        raise RuntimeError(f"expected one run folder in {parent}, found {[p.name for p in runs]}")
    return runs[0]


def max_abs_diff(a, b) -> float:
    """Max |a - b| over two nested structures of dicts/lists/tensors/numbers: 0.0 when identical,
    ``inf`` when the structures, shapes, or any non-float value differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return math.inf
        return max((max_abs_diff(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return math.inf
        return max((max_abs_diff(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return math.inf
        if a.is_floating_point() and a.numel():
            return float((a.double() - b.double()).abs().max())
        return 0.0 if torch.equal(a, b) else math.inf
    return 0.0 if a == b else math.inf


def max_float_change(a: dict, b: dict) -> float:
    """Max |a - b| over the floating-point tensors two state dicts share (integer buffers such
    as BatchNorm's step counter are left out): how far a net moved between two checkpoints."""
    return max((float((a[k].double() - b[k].double()).abs().max()) for k in a
                if k in b and a[k].is_floating_point() and a[k].numel()), default=0.0)


def _ckpt_step(path: Path) -> int:
    return int(path.name.split("-")[1])


def resume_equivalence(work: str | Path, cases: dict | None = None, common=None, extra=(),
                       seed: int = 0) -> list[dict]:
    """Per case: an uninterrupted run of N steps vs the same run stopped at N/2 (train.steps=N/2,
    its final checkpoint) and resumed with ``ganforge train --resume RUN --set train.steps=N``,
    each in its own process. Max |difference| of G, D, G_ema and of the optimizers' state."""
    from .checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
    from .rundir import read_metrics

    cases = RESUME_CASES if cases is None else cases
    common = RESUME_COMMON if common is None else common
    rows = []
    for name, (preset, own) in cases.items():
        over = list(common) + list(own) + list(extra) + [f"seed={seed}"]
        n = int([o for o in over if o.startswith("train.steps=")][-1].split("=")[1])
        half = n // 2
        base = Path(work) / f"resume-{name.replace('+', '-')}"
        t0 = time.perf_counter()
        full_argv = _train_argv(preset, over + [f"out={base / 'full'}"])
        half_argv = _train_argv(preset, over + [f"train.steps={half}", f"out={base / 'half'}"])
        _run_cli(full_argv)
        _run_cli(half_argv)
        run_f, run_h = _only_run(base / "full"), _only_run(base / "half")
        resume_argv = [sys.executable, "-m", "ganforge", "train", "--resume", str(run_h), "--set",
                       f"train.steps={n}"]
        _run_cli(resume_argv)
        a_nets, a_extra, _ = load_checkpoint(latest_checkpoint(run_f / "checkpoints"))
        b_nets, b_extra, _ = load_checkpoint(latest_checkpoint(run_h / "checkpoints"))
        mid_nets, _, _ = load_checkpoint(list_checkpoints(run_h / "checkpoints")[0])  # the step-N/2 one
        other = {k: v for k, v in a_extra.items() if k not in ("opt_g", "opt_d")}
        other_b = {k: v for k, v in b_extra.items() if k not in ("opt_g", "opt_d")}
        la = [r for r in read_metrics(run_f) if r["step"] == n and "loss/D" in r]
        lb = [r for r in read_metrics(run_h) if r["step"] == n and "loss/D" in r]
        row = {
            "case": name, "preset": preset, "steps": n, "stopped_at": half,
            "nets": sorted(a_nets), "n_tensors": sum(len(v) for v in a_nets.values()),
            "max_diff_weights": {k: max_abs_diff(a_nets[k], b_nets.get(k)) for k in a_nets},
            "max_diff_opt": {k: max_abs_diff(a_extra[k], b_extra[k]) for k in ("opt_g", "opt_d")},
            "rest_identical": max_abs_diff(other, other_b) == 0.0,  # counters, schedulers, data order, RNG
            "loss_at_N_equal": bool(la and lb and la[-1]["loss/D"] == lb[-1]["loss/D"]
                                    and la[-1]["loss/G"] == lb[-1]["loss/G"]),
            "weight_change_second_half": max_float_change(mid_nets["G"], a_nets["G"]),
            "seconds": time.perf_counter() - t0,
            "commands": [_quote(full_argv), _quote(half_argv), _quote(resume_argv)],
        }
        row["max_diff"] = max(list(row["max_diff_weights"].values()) + list(row["max_diff_opt"].values()))
        rows.append(row)
        print(f"resume {name:18s} N={n}: max |diff| weights {row['max_diff_weights']}, optimizers "
              f"{row['max_diff_opt']}, rest identical {row['rest_identical']}, loss at N equal "
              f"{row['loss_at_N_equal']}; G moved by up to {row['weight_change_second_half']:.3g} over "
              f"the second half; {row['seconds']:.0f} s", flush=True)
    return rows


def _last_logged_step(metrics: Path) -> int:
    last = -1
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                last = max(last, int(json.loads(line)["step"]))
            except (ValueError, KeyError):  # a half-written last line
                pass
    return last


def kill_drill(work: str | Path, preset: str = DRILL_PRESET, overrides=None, k: int = DRILL_K,
               steps: int = DRILL_STEPS, repeats: int = DRILL_REPEATS, seed: int = 0, extra=(),
               compare: bool = True, timeout: float = 900) -> dict:
    """``ganforge train`` as a child process with ckpt_every=k and log_every=1, SIGKILLed at a
    seeded random step in (3k, 6k) plus a seeded random delay of up to 0.5 s, then
    ``ganforge train --resume RUN``. Steps lost = last step in metrics.jsonl - checkpoint resumed.
    With ``compare``, the resumed run's final weights are compared with an uninterrupted run."""
    import random
    import signal

    from .checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint

    over = (list(DRILL_COMMON if overrides is None else overrides) + [f"train.steps={steps}",
            f"train.ckpt_every={k}", "train.log_every=1"] + list(extra) + [f"seed={seed}"])
    if 6 * k >= steps:
        raise ValueError(f"the kill window (3k, 6k) must end before train.steps ({steps})")
    work = Path(work)
    ref = None
    if compare:
        _run_cli(_train_argv(preset, over + [f"out={work / 'drill-reference'}"]), timeout=timeout)
        ref = load_checkpoint(latest_checkpoint(_only_run(work / "drill-reference") / "checkpoints"))
    rows = []
    for i in range(repeats):
        rng = random.Random(seed * 1000 + i)
        target, delay = rng.randint(3 * k + 1, 6 * k - 1), rng.uniform(0.0, 0.5)
        parent = work / f"drill-{i}"
        argv = _train_argv(preset, over + [f"out={parent}"])
        parent.mkdir(parents=True, exist_ok=True)
        err = open(work / f"drill-{i}.stderr", "w")  # a file, not a pipe: nothing can block the child
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        run = None
        while True:
            if proc.poll() is not None:
                err.close()
                raise RuntimeError(f"drill {i}: the run ended (exit {proc.returncode}) before step {target}: "
                                   f"{(work / f'drill-{i}.stderr').read_text()[-2000:]}")
            if time.time() > deadline:
                proc.kill()
                err.close()
                raise RuntimeError(f"drill {i}: no step {target} within {timeout} s")
            runs = [p for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
            if runs and _last_logged_step(runs[0] / "metrics.jsonl") >= target:
                run = runs[0]
                break
            time.sleep(0.02)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        err.close()
        at_kill = _last_logged_step(run / "metrics.jsonl")
        ckpts = [_ckpt_step(p) for p in list_checkpoints(run / "checkpoints")]
        latest = latest_checkpoint(run / "checkpoints")
        debris = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("."))
        res = _run_cli([sys.executable, "-m", "ganforge", "train", "--resume", str(run)], timeout=timeout,
                       check=False)
        result = json.loads((run / "result.json").read_text()) if (run / "result.json").is_file() else {}
        row = {"repeat": i, "target_step": target, "delay_s": round(delay, 3), "killed_by": "SIGKILL",
               "exit_after_kill": proc.returncode, "step_at_kill": at_kill, "checkpoints_on_disk": ckpts,
               "resumed_from": latest.name if latest else None,
               "resumed_step": _ckpt_step(latest) if latest else None,
               "steps_lost": at_kill - (_ckpt_step(latest) if latest else 0), "ckpt_every": k,
               "debris": debris, "resume_exit": res.returncode,
               "resume_line": next((ln for ln in res.stdout.splitlines() if ln.startswith("resuming")), ""),
               "completed": res.returncode == 0 and result.get("step") == steps and result.get("reason") == "done",
               "final_step": result.get("step")}
        if ref is not None and row["completed"]:
            got = load_checkpoint(latest_checkpoint(run / "checkpoints"))
            row["max_diff_vs_uninterrupted"] = max(max_abs_diff(ref[0], got[0]),
                                                   max_abs_diff(ref[1]["opt_g"], got[1]["opt_g"]),
                                                   max_abs_diff(ref[1]["opt_d"], got[1]["opt_d"]))
        rows.append(row)
        print(f"kill -9 #{i}: killed at step {at_kill} (target {target} + {delay:.2f} s), resumed from "
              f"{row['resumed_from']} -> {row['steps_lost']} steps lost (ckpt_every {k}), resume exit "
              f"{res.returncode}, completed {row['completed']}"
              + (f", max |diff| vs uninterrupted {row['max_diff_vs_uninterrupted']:g}"
                 if "max_diff_vs_uninterrupted" in row else "")
              + (f", debris {debris}" if debris else ""), flush=True)
    return {"preset": preset, "overrides": over, "ckpt_every": k, "steps": steps, "rows": rows,
            "command": _quote(_train_argv(preset, over + ["out=OUT"]))}


# bad inputs ------------------------------------------------------------------------------------

class _Payload:
    """Unpickling this calls ``fn(*args)`` (the classic pickle code-execution payload)."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _img(path: Path, mode: str = "RGB", size=(20, 20), color=None, fmt: str | None = None, **kw) -> Path:
    """A small image file of a PIL ``mode`` (RGB, RGBA, P, CMYK, I;16, L)."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        a = (np.arange(size[0] * size[1], dtype=np.uint16).reshape(size[1], size[0]) * 97) % 65535
        im = Image.fromarray(a.astype(np.uint16))
        if im.mode != "I;16":
            im = im.convert("I;16")
    elif mode == "P":
        im = Image.new("RGB", size, color or (30, 120, 200)).convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        im = Image.new(mode, size, color if color is not None else
                       {"RGBA": (200, 30, 60, 128), "CMYK": (0, 255, 255, 0), "L": 90}.get(mode, (200, 30, 60)))
    im.save(path, format=fmt, **kw)
    return path


def _png_header_only(path: Path, w: int, h: int) -> Path:
    """A tiny PNG whose header claims ``w`` x ``h`` pixels (what a decompression bomb looks like
    before it is decoded): signature, IHDR, an empty IDAT, IEND."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit gray
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path


def _broken_images(d: Path) -> Path:
    import io

    import numpy as np
    from PIL import Image

    d.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(buf, "PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "zero.png").write_bytes(b"")
    (d / "text.png").write_text("this is not an image\n")
    return d


def _flip_byte(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _plant_pickle(ckpt: Path, marker: Path) -> None:
    """state.pt -> a pickle whose loading would run ``touch marker``; the manifest is fixed so the
    checksum passes (only the safe loader stands in the way)."""
    import hashlib

    torch.save({"step": 1, "evil": _Payload(os.system, (f"touch '{marker}'",))}, ckpt / "state.pt")
    manifest = json.loads((ckpt / "manifest.json").read_text())
    manifest["files"]["state.pt"] = hashlib.sha256((ckpt / "state.pt").read_bytes()).hexdigest()
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


TOY_TINY = ["model.arch=mlp", "data.name=ring8", "model.z_dim=4", "model.g.hidden=16", "model.d.hidden=16",
            "train.batch_size=32", "train.steps=4", "train.log_every=2", "train.sample_every=0",
            "train.ckpt_every=0", "train.progress=false", "train.threads=1", "train.device=cpu"]
IMG_TINY = ["data.image_size=16", "model.g.width=8", "model.d.width=8", "train.steps=2", "train.batch_size=4",
            "train.grid_size=4", "train.log_every=1", "train.sample_every=0", "train.ckpt_every=0",
            "train.progress=false", "train.threads=1", "train.device=cpu"]


def _sets(overrides) -> list[str]:
    out = []
    for o in overrides:
        out += ["--set", o]
    return out


def bad_input_cases(w: Path) -> list[dict]:
    """The user mistakes (and unusual-but-valid inputs) tried by :func:`bad_inputs`.

    Each case: ``id``, ``input`` (what it is), ``argv`` (after ``ganforge``), ``expect`` ("error"
    = exit 2 with a one-line message; "ok" = exit 0), optional ``setup`` (a callable run first),
    ``needs`` (fixture runs: "toy", "dcgan"), ``check`` (callable(result) -> problem or None).
    """
    runs = w / "runs"
    img = lambda folder: ["train", "dcgan", *_sets(IMG_TINY + [f"data.name=folder:{folder}", f"out={runs}"])]
    toy = lambda *more: ["train", "vanilla", *_sets(TOY_TINY + [f"out={runs}", *more])]
    notrun = w / "not-a-run"
    R = lambda name: w / "runs-fixtures" / name  # per-case copies of the toy run

    def copy_toy(name, mutate=None):
        def setup():
            import shutil
            shutil.copytree(w / "fixtures" / "toy", R(name))
            if mutate:
                mutate(R(name))
        return setup

    def only_ckpt(run: Path) -> Path:
        return sorted((run / "checkpoints").iterdir())[-1]

    def corrupt(run):
        _flip_byte(only_ckpt(run) / "state.pt")

    def foreign(run):
        import shutil
        src = sorted((w / "fixtures" / "dcgan" / "checkpoints").iterdir())[-1]
        shutil.copytree(src, run / "checkpoints" / "ckpt-0000099")

    def evil(run):
        _plant_pickle(only_ckpt(run), w / "PWNED-resume")

    def evil_sample(run):
        _plant_pickle(only_ckpt(run), w / "PWNED-sample")

    def bad_cfg(run):
        (run / "config.yaml").write_text("train: [unclosed\n  steps: 4\n")

    def no_marker(name):
        return lambda res: f"{name} was created: the payload ran" if (w / name).exists() else None

    def says(text):
        return lambda res: None if text in res.stdout + res.stderr else f"output lacks '{text}'"

    def mk_files():
        _img(w / "cmyk" / "a.jpg", "CMYK", fmt="JPEG")
        _img(w / "cmyk" / "b.jpg", "CMYK", color=(255, 0, 0, 0), fmt="JPEG")
        _img(w / "gray16" / "a.png", "I;16")
        _img(w / "gray16" / "b.png", "I;16", size=(24, 20))
        _img(w / "palette" / "a.png", "P")
        _img(w / "palette" / "b.png", "P", size=(30, 20))
        _img(w / "rgba" / "a.png", "RGBA")
        _img(w / "rgba" / "b.png", "RGBA", color=(0, 0, 255, 0))
        _png_header_only(w / "huge" / "huge.png", 9000, 9000)
        _png_header_only(w / "bomb" / "bomb.png", 50000, 50000)
        _img(w / "bomb" / "good-1.png", "RGB")
        _img(w / "bomb" / "good-2.png", "RGB", color=(10, 200, 10))
        _broken_images(w / "broken")
        (w / "empty").mkdir(parents=True, exist_ok=True)
        (w / "a-file.txt").write_text("not a folder\n")
        notrun.mkdir(parents=True, exist_ok=True)
        (notrun / "notes.txt").write_text("just a folder\n")
        (w / "broken.yaml").write_text("train: [unclosed\n  steps: 4\n")
        (w / "empty-root").mkdir(parents=True, exist_ok=True)
        _img(w / "fixture-images" / "a.png", "RGB")  # the data of the DCGAN fixture run
        _img(w / "fixture-images" / "b.png", "RGB", color=(10, 200, 10))

    cases = [
        # configuration
        dict(id="unknown-key", input="unknown config key `train.stepz`", argv=toy("train.stepz=10"), expect="error"),
        dict(id="bad-type", input="bad value type `train.steps=abc`", argv=toy("train.steps=abc"), expect="error"),
        dict(id="bad-range", input="out-of-range value `train.batch_size=0`", argv=toy("train.batch_size=0"),
             expect="error"),
        dict(id="bad-lr", input="`optim.lr_d=nan`", argv=toy("optim.lr_d=nan"), expect="error"),
        dict(id="unknown-preset", input="unknown preset `dcgna`", argv=["train", "dcgna"], expect="error"),
        dict(id="bad-override", input="override without `=` (`--set train.steps`)", argv=["train", "--set", "train.steps"],
             expect="error"),
        dict(id="missing-yaml", input="`-c` config file that does not exist", argv=["train", "-c", str(w / "nope.yaml")],
             expect="error"),
        dict(id="broken-yaml", input="`-c` file that is not valid YAML", argv=["train", "-c", str(w / "broken.yaml")],
             expect="error"),
        dict(id="no-cuda", input="`train.device=cuda` on a machine without CUDA", argv=toy("train.device=cuda"),
             expect="ok" if torch.cuda.is_available() else "error"),
        # data
        dict(id="missing-folder", input="`data.name=folder:` a folder that does not exist",
             argv=img(w / "no-such-folder"), expect="error"),
        dict(id="empty-folder", input="empty folder", argv=img(w / "empty"), expect="error"),
        dict(id="file-not-folder", input="`folder:` a file, not a folder", argv=img(w / "a-file.txt"), expect="error"),
        dict(id="only-broken", input="folder of only broken images (truncated PNG, zero-byte .png, text file named .png)",
             argv=img(w / "broken"), expect="error"),
        dict(id="missing-dataset", input="`data.name=mnist` offline, empty root, `data.download=false`",
             argv=["train", "dcgan", *_sets([f"data.name=mnist", f"data.root={w / 'empty-root'}",
                                            "data.download=false", f"out={runs}"])], expect="error"),
        dict(id="cmyk-jpeg", input="CMYK JPEGs (2 files)", argv=img(w / "cmyk"), expect="ok", check=says("2 images 3x16x16")),
        dict(id="png16", input="16-bit grayscale PNGs (`I;16`, 2 files)", argv=img(w / "gray16"), expect="ok",
             check=says("2 images 1x16x16")),
        dict(id="palette", input="palette PNGs (mode `P`, 2 files)", argv=img(w / "palette"), expect="ok",
             check=says("2 images 3x16x16")),
        dict(id="rgba", input="RGBA PNGs with transparency (2 files)", argv=img(w / "rgba"), expect="ok",
             check=says("2 images 3x16x16")),
        dict(id="huge", input="huge image alone: PNG header says 9000x9000 (81 MP > ganforge's 8192² guard)",
             argv=img(w / "huge"), expect="error", check=says("too large")),
        dict(id="bomb", input="decompression bomb (PNG header 50000x50000, 2.5 GP) beside 2 good PNGs",
             argv=img(w / "bomb"), expect="ok", check=says("1 unreadable files skipped")),
        # run folders and checkpoints
        dict(id="resume-not-run", input="`--resume` on a folder that is not a run folder",
             argv=["train", "--resume", str(notrun)], expect="error"),
        dict(id="resume-missing", input="`--resume` on a path that does not exist",
             argv=["train", "--resume", str(w / "no-such-run")], expect="error"),
        dict(id="resume-with-preset", input="`train dcgan --resume RUN` (preset and resume together)",
             argv=["train", "dcgan", "--resume", str(R("toy-preset"))], expect="error", needs={"toy"},
             setup=copy_toy("toy-preset")),
        dict(id="resume-corrupt", input="`--resume` on a run whose only checkpoint is corrupted (state.pt byte flipped)",
             argv=["train", "--resume", str(R("toy-corrupt"))], expect="error", needs={"toy"},
             setup=copy_toy("toy-corrupt", corrupt), check=says("no usable checkpoint")),
        dict(id="resume-bad-config", input="`--resume` on a run whose config.yaml is not valid YAML",
             argv=["train", "--resume", str(R("toy-badcfg"))], expect="error", needs={"toy"},
             setup=copy_toy("toy-badcfg", bad_cfg)),
        dict(id="resume-other-width", input="`--resume RUN --set model.d.hidden=32` (checkpoint from another architecture)",
             argv=["train", "--resume", str(R("toy-width")), "--set", "model.d.hidden=32", "--set", "train.steps=8"],
             expect="error", needs={"toy"}, setup=copy_toy("toy-width"), check=says("different model")),
        dict(id="resume-foreign-ckpt", input="`--resume` on an MLP run whose newest checkpoint was copied from a DCGAN run",
             argv=["train", "--resume", str(R("toy-foreign")), "--set", "train.steps=200"], expect="error",
             needs={"toy", "dcgan"}, setup=copy_toy("toy-foreign", foreign), check=says("different model")),
        dict(id="sample-foreign-ckpt", input="`sample` on that run (newest checkpoint from a DCGAN run)",
             argv=["sample", str(R("toy-foreign2")), "--n", "4", "--out", str(w / "s-foreign.png")], expect="error",
             needs={"toy", "dcgan"}, setup=copy_toy("toy-foreign2", foreign)),
        dict(id="resume-evil-pickle", input="`--resume` on a run whose state.pt is a malicious pickle "
                                            "(would `touch PWNED-resume`; manifest checksum fixed)",
             argv=["train", "--resume", str(R("toy-evil")), "--set", "train.steps=8"], expect="error",
             needs={"toy"}, setup=copy_toy("toy-evil", evil), check=no_marker("PWNED-resume")),
        dict(id="sample-evil-pickle", input="`sample` on a run with the malicious state.pt (sampling reads only safetensors)",
             argv=["sample", str(R("toy-evil2")), "--n", "4", "--out", str(w / "s-evil.png")], expect="ok",
             needs={"toy"}, setup=copy_toy("toy-evil2", evil_sample), check=no_marker("PWNED-sample")),
        dict(id="sample-not-run", input="`sample` on a folder that is not a run folder",
             argv=["sample", str(notrun)], expect="error"),
        dict(id="eval-not-run", input="`eval` on a folder that is not a run folder", argv=["eval", str(notrun)],
             expect="error"),
        dict(id="sample-no-step", input="`sample --checkpoint 999` (no such step)",
             argv=["sample", str(w / "fixtures" / "toy"), "--checkpoint", "999"], expect="error", needs={"toy"}),
        dict(id="sample-n0", input="`sample --n 0`", argv=["sample", str(w / "fixtures" / "toy"), "--n", "0"],
             expect="error", needs={"toy"}),
        dict(id="eval-toy-run", input="`eval` on a 2-D toy run without `--ref`",
             argv=["eval", str(w / "fixtures" / "toy")], expect="error", needs={"toy"}),
        dict(id="eval-bad-metric", input="`eval --metrics fid,bogus`",
             argv=["eval", str(w / "fixtures" / "toy"), "--metrics", "fid,bogus", "--ref", "fashion-mnist:test"],
             expect="error", needs={"toy"}),
    ]
    for c in cases:
        c.setdefault("needs", set())
        c["_files"] = mk_files
    return cases


def _fixture_runs(w: Path, needs: set) -> None:
    """The trained runs some cases start from: a 4-step toy MLP run and a 2-step DCGAN run."""
    import shutil

    specs = {"toy": ("vanilla", TOY_TINY),
             "dcgan": ("dcgan", [*IMG_TINY, f"data.name=folder:{w / 'fixture-images'}"])}
    for name in sorted(needs):
        if (w / "fixtures" / name).is_dir():
            continue
        preset, over = specs[name]
        tmp = w / "fixtures" / f"_{name}"
        _run_cli(_train_argv(preset, over + [f"out={tmp}"]))
        shutil.move(str(_only_run(tmp)), str(w / "fixtures" / name))
        shutil.rmtree(tmp)


def _first(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def bad_inputs(work: str | Path, only=None, jobs: int = 1, timeout: float = 300) -> list[dict]:
    """Run the real CLI (a subprocess each) on every case of :func:`bad_input_cases` (or the ids in
    ``only``) and record exit status, the first line of stderr, whether a traceback appeared, and
    a verdict against the expectation."""
    from concurrent.futures import ThreadPoolExecutor

    w = Path(work)
    w.mkdir(parents=True, exist_ok=True)
    cases = [c for c in bad_input_cases(w) if only is None or c["id"] in only]
    if only is not None and len(cases) != len(set(only)):
        raise ValueError(f"unknown case ids: {sorted(set(only) - {c['id'] for c in cases})}")
    if cases:
        cases[0]["_files"]()
    _fixture_runs(w, set().union(*(c["needs"] for c in cases)) if cases else set())
    for c in cases:
        if c.get("setup"):
            c["setup"]()

    def one(c):
        argv = [sys.executable, "-m", "ganforge", *map(str, c["argv"])]
        t0 = time.perf_counter()
        res = _run_cli(argv, timeout=timeout, check=False)
        tb = "Traceback (most recent call last)" in res.stderr + res.stdout
        err_line = next((ln for ln in res.stderr.splitlines() if ln.startswith("error:")), "")
        problems = []
        if tb:
            problems.append("traceback")
        if c["expect"] == "error" and res.returncode == 0:
            problems.append("exit 0 on an error")
        elif c["expect"] == "error" and res.returncode != 2:
            problems.append(f"exit {res.returncode}, not 2")
        elif c["expect"] == "ok" and res.returncode != 0:
            problems.append(f"failed with exit {res.returncode}")
        if c["expect"] == "error" and res.returncode != 0 and not err_line:
            problems.append("no `error:` line")
        if c.get("check"):
            p = c["check"](res)
            if p:
                problems.append(p)
        data_line = next((ln for ln in res.stdout.splitlines()
                          if ln.startswith(("data:", "wrote", "done:"))), "").replace(str(w), "$W")
        return {"id": c["id"], "input": c["input"], "command": _quote(argv).replace(str(w), "$W"),
                "expect": c["expect"], "exit": res.returncode,
                "stderr_first_line": _first(res.stderr).replace(str(w), "$W"),
                "error_line": err_line.replace(str(w), "$W"), "stderr_lines": len(res.stderr.splitlines()),
                "traceback": tb,
                "stdout_note": data_line, "ok": not problems, "problems": problems,
                "seconds": time.perf_counter() - t0,
                "stderr": res.stderr[-4000:] if (tb or problems) else res.stderr[:1000]}

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        rows = list(pool.map(one, cases))
    for r in rows:
        print(f"{'ok ' if r['ok'] else 'BUG'} {r['id']:20s} exit {r['exit']} {r['stderr_first_line'][:110]}"
              + (f"  <- {', '.join(r['problems'])}" if r["problems"] else ""), flush=True)
    return rows


def reliability(out: str = "runs/bench", seed: int = 0, extra=(), parts=("resume", "kill9", "bad")) -> dict:
    import tempfile

    Path(out).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="reliability-", dir=out)).resolve()
    print(f"work folder: {work}", flush=True)
    rows: dict = {"work": str(work), "seconds": {}}
    if "resume" in parts:
        t0 = time.perf_counter()
        rows["resume"] = resume_equivalence(work, extra=extra, seed=seed)
        rows["seconds"]["resume"] = time.perf_counter() - t0
    if "kill9" in parts:
        t0 = time.perf_counter()
        rows["kill9"] = kill_drill(work, seed=seed, extra=extra)
        rows["seconds"]["kill9"] = time.perf_counter() - t0
    if "bad" in parts:
        t0 = time.perf_counter()
        rows["bad_inputs"] = bad_inputs(work / "bad")
        rows["seconds"]["bad_inputs"] = time.perf_counter() - t0
        # control: the planted payload is live (a naive torch.load runs it), so "not created" means something
        probe = work / "bad" / "control"
        if (work / "bad" / "fixtures" / "toy").is_dir():
            import shutil
            shutil.copytree(work / "bad" / "fixtures" / "toy", probe)
            ck = sorted((probe / "checkpoints").iterdir())[-1]
            marker = work / "bad" / "PWNED-control"
            _plant_pickle(ck, marker)
            code = f"import torch; torch.load({str(ck / 'state.pt')!r}, weights_only=False)"
            subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
            rows["payload_control_ran"] = marker.exists()
            print(f"control: the same payload under torch.load(weights_only=False) created its marker: "
                  f"{rows['payload_control_ran']}", flush=True)
    return rows


def _fmt_diff(v: float) -> str:
    return "inf (mismatch)" if v == math.inf else f"{v:g}"


def reliability_tables(rows: dict) -> str:
    parts = []
    if rows.get("resume"):
        lines = ["| case | preset | N | stopped at | max abs diff G | D | G_ema | optimizer state | counters, RNG, data order "
                 "| G moved in 2nd half |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows["resume"]:
            w = r["max_diff_weights"]
            lines.append(f"| {r['case']} | {r['preset']} | {r['steps']} | {r['stopped_at']} | {_fmt_diff(w['G'])} | "
                         f"{_fmt_diff(w['D'])} | {_fmt_diff(w['G_ema']) if 'G_ema' in w else '– (no EMA)'} | "
                         f"{_fmt_diff(max(r['max_diff_opt'].values()))} | "
                         f"{'identical' if r['rest_identical'] else 'DIFFER'} | {r['weight_change_second_half']:.3g} |")
        parts.append("\n".join(lines))
    if rows.get("kill9"):
        k = rows["kill9"]
        lines = ["| # | killed at step | resumed from | steps lost | ckpt_every | debris left | resume exit | "
                 "completed | max abs diff vs uninterrupted |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in k["rows"]:
            d = r.get("max_diff_vs_uninterrupted")
            lines.append(f"| {r['repeat']} | {r['step_at_kill']} | {r['resumed_from']} | {r['steps_lost']} | "
                         f"{r['ckpt_every']} | {', '.join(r['debris']) or 'none'} | {r['resume_exit']} | "
                         f"{'yes' if r['completed'] else 'NO'} | {'–' if d is None else _fmt_diff(d)} |")
        parts.append("\n".join(lines))
    if rows.get("bad_inputs"):
        lines = ["| # | input | expected | exit | first line of stderr | traceback | verdict |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for i, r in enumerate(rows["bad_inputs"], 1):
            first = (r["stderr_first_line"] or "(empty)" + (f"; stdout: {r['stdout_note']}" if r["stdout_note"] else ""))
            first = first.replace("|", "\\|")
            if len(first) > 160:
                first = first[:157] + "..."
            verdict = "as expected" if r["ok"] else "**BUG**: " + "; ".join(r["problems"])
            lines.append(f"| {i} | {r['input'].replace('|', '/')} | {r['expect']} | {r['exit']} | {first} | "
                         f"{'**yes**' if r['traceback'] else 'no'} | {verdict} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def main(args) -> int:
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    extra = list(args.set or [])
    print(f"command: ganforge {' '.join(sys.argv[1:])}")
    print(f"environment: {_env()}")
    t0 = time.perf_counter()
    if args.which in ("stacked", "conditional", "i2i"):  # the model benchmarks (bench_models.py)
        from . import bench_models
        table = bench_models.main(args)
        print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s\n\n{table}")
        return 0
    if args.which == "toy":
        presets = (args.presets or "vanilla,wgan-gp,hinge").split(",")
        datasets = (args.datasets or "ring8,grid25").split(",")
        print(f"settings: {' '.join(TOY_COMMON)}; per preset: {TOY_PRESET}; seeds {seeds}; "
              f"{TOY_EVAL_SAMPLES} samples from G_ema")
        rows = toy(presets, datasets, seeds, args.steps, args.out, extra)
        table = toy_table(rows)
    elif args.which == "quality":
        presets = (args.presets or "dcgan,wgan-gp,hinge").split(",")
        budgets = [float(b) if "." in b else int(b) for b in (args.budgets or "2,5,10,20").split(",")]
        print(f"settings: fashion-mnist train, presets' defaults, budgets {budgets} process CPU-minutes "
              f"(evaluation excluded), 10000 samples vs 10000 test images, features fmnist, seed {seeds[0]}")
        rows = quality(presets, budgets, seed=seeds[0], extra=extra)
        fl = floor(seed=seeds[0])
        table = quality_table(rows, fl)
        rows = {"rows": rows, "floor": fl}
    elif args.which == "floor":
        fl = floor(seed=seeds[0])
        table = quality_table([], fl)
        rows = {"floor": fl}
    elif args.which == "soak":
        preset = (args.presets or "dcgan").split(",")[0]
        minutes = 30.0 if args.minutes is None else args.minutes
        print(f"settings: `ganforge train {preset}` in a child process for {minutes:g} wall-minutes "
              f"(train.max_minutes), {' '.join(SOAK_COMMON + extra)}, seed {seeds[0]}; RSS (VmRSS) from "
              f"/proc every ~{min(5.0, max(0.2, minutes * 60 / 150)):g} s; warm-up = first 10 % of the time; "
              f"slope = least squares over the rest", flush=True)
        rows = soak(minutes, preset, extra, seed=seeds[0], out=args.out)
        table = soak_table(rows)
    elif args.which == "reliability":
        print(f"settings: resume equivalence {RESUME_COMMON} per preset {RESUME_CASES}; kill -9 drill "
              f"{DRILL_PRESET} {DRILL_COMMON} steps {DRILL_STEPS}, ckpt_every {DRILL_K}, {DRILL_REPEATS} kills, "
              f"seed {seeds[0]}; bad inputs through the CLI", flush=True)
        rows = reliability(out=args.out, seed=seeds[0], extra=extra)
        table = reliability_tables(rows)
    else:
        presets = (args.presets or "dcgan,wgan-gp,hinge").split(",")
        steps = args.steps or 20
        print(f"settings: batch 64, fashion-mnist, {steps} iterations x 5 repeats after 3 warm-up; median; "
              f"sampling: G alone in eval mode, batch 256, 3 calls x 5 repeats; matmul ceiling: best fp32 rate "
              f"at {torch.get_num_threads()} threads over squares 512..4096 and each preset's layer GEMM shapes")
        rows = speed(presets, steps=steps)
        table = speed_table(rows)
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s\n\n{table}")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": sys.argv, "environment": _env(), "rows": rows}, indent=1))
    return 0
