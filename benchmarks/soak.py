"""Soak: memory over a long CPU run. ``ganforge train`` runs as a child process for a wall-time
budget with periodic samples and checkpoints, and its RSS is sampled from /proc: start, end,
peak and the least-squares slope after warm-up.

    python -m benchmarks.soak --minutes 30 --json soak.json
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from .common import cli, finish, header, make_parser, quote, reap, spawn, train_argv


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
    argv = train_argv(preset, overrides)
    if interval is None:
        interval = min(5.0, max(0.2, minutes * 60 / 150))
    samples: list[tuple[float, float, float | None]] = []  # (t since start, RSS MB, child CPU s)
    after: list[tuple[float, float]] = []  # samples once result.json exists: the child is shutting down
    hwm = 0.0
    with open(parent / "train.log", "w") as log:
        t0 = time.perf_counter()
        proc = spawn(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
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
        finally:
            reap(proc)
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
        "preset": preset, "minutes": minutes, "seed": seed, "overrides": overrides, "command": quote(argv),
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



def main(args) -> int:
    preset = (args.presets or "dcgan").split(",")[0]
    minutes = 30.0 if args.minutes is None else args.minutes
    extra = list(args.set or [])
    header(args, f"`ganforge train {preset}` in a child process for {minutes:g} wall-minutes "
                 f"(train.max_minutes), {' '.join(SOAK_COMMON + extra)}, seed {args.seeds[0]}; RSS (VmRSS) from "
                 f"/proc every ~{min(5.0, max(0.2, minutes * 60 / 150)):g} s; warm-up = first 10 % of the time; "
                 f"slope = least squares over the rest", seeds=[args.seeds[0]])
    row = soak(minutes, preset, extra, seed=args.seeds[0], out=args.out)
    return finish(args, row, soak_table(row))


parser = make_parser("soak", __doc__.split("\n\n")[0],
                     seeds="comma-separated seeds; the first is used (default 0,1,2)",
                     presets="the preset to train (default dcgan; the first of a list)",
                     minutes=True, set=True, out=True)

if __name__ == "__main__":
    cli(parser, main)
