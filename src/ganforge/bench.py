"""Benchmarks (not tests): ``ganforge bench toy`` and ``ganforge bench speed``.

Each prints the exact command, settings, seeds, torch version, threads and wall time beside its
numbers, and a Markdown table ready for BENCHMARKS.md.
"""

from __future__ import annotations

import json
import platform
import statistics
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

def matmul_ceiling(sizes=(1024, 2048, 4096), repeats: int = 5, device="cpu") -> float:
    """The machine's fp32 matmul GFLOP/s: the best of ``repeats`` timings over several sizes."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        a @ b  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            if a.is_cuda:
                torch.cuda.synchronize()
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def speed(presets, batch: int = 64, steps: int = 20, repeats: int = 5, data: str = "fashion-mnist") -> list[dict]:
    from torch.utils.flop_counter import FlopCounterMode

    from .config import resolve
    from .train import Reporter, build_state, train_step

    ceiling = matmul_ceiling()
    print(f"fp32 matmul ceiling: {ceiling:.1f} GFLOP/s", flush=True)
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
        row = {"preset": preset, "batch": batch, "n_critic": cfg.train.n_critic, "iter_per_s": it_s,
               "real_img_per_s": img_s, "gflop_per_iter": flops / 1e9, "gflop_s": flops * it_s / 1e9,
               "ceiling_gflop_s": ceiling, "fraction_of_ceiling": flops * it_s / 1e9 / ceiling}
        rows.append(row)
        print(f"{preset:10s} {it_s:6.2f} it/s, {img_s:7.0f} real img/s, {flops / 1e9:.2f} GFLOP/iter, "
              f"{row['gflop_s']:.1f} GFLOP/s ({100 * row['fraction_of_ceiling']:.0f} % of ceiling)", flush=True)
    return rows


def speed_table(rows) -> str:
    lines = ["| preset | batch | n_critic | iterations/s | real images/s | GFLOP / iteration | GFLOP/s | % of matmul ceiling |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        counted = r["gflop_per_iter"] == r["gflop_per_iter"]  # NaN where the counter cannot follow
        flops = (f"{r['gflop_per_iter']:.2f} | {r['gflop_s']:.1f} | {100 * r['fraction_of_ceiling']:.0f} %"
                 if counted else "not countable (autograd.grad) | – | –")
        lines.append(f"| {r['preset']} | {r['batch']} | {r['n_critic']} | {r['iter_per_s']:.2f} | "
                     f"{r['real_img_per_s']:.0f} | {flops} |")
    return "\n".join(lines)


# -- Fashion-MNIST quality at fixed CPU budgets (PROTOCOLS.md section 3) -------------------

QUALITY_METRICS = "fid,kid,pr,dc,is"


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
            while cpu < budget * 60:
                c0 = time.process_time()
                train_step(state, rep)
                cpu += time.process_time() - c0
                if state.step % 200 == 0:
                    rep.flush()
            net = state.sampler_net
            sample = seeded_sampler(net, state.cfg, state.device)
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


def main(args) -> int:
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    extra = list(args.set or [])
    print(f"command: ganforge {' '.join(sys.argv[1:])}")
    print(f"environment: {_env()}")
    t0 = time.perf_counter()
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
    else:
        presets = (args.presets or "dcgan,wgan-gp,hinge").split(",")
        print(f"settings: batch 64, fashion-mnist, {20} iterations x 5 repeats after 3 warm-up; median")
        rows = speed(presets)
        table = speed_table(rows)
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s\n\n{table}")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": sys.argv, "environment": _env(), "rows": rows}, indent=1))
    return 0
