"""A folder larger than memory: the dataset cache's build time and size, peak memory while
training from it, and its training throughput against the in-memory path.

1. Generate (once; kept for reruns) a folder of N 64x64 RGB PNG images of random coloured shapes,
   seeded per image, written by two processes, in subfolders of 1000 files.
2. Build the cache of the whole folder in a child process (``data.cache=on``): wall and CPU time,
   size on disk, the child's peak RSS.
3. Train dcgan at 64 px (narrow, ``--width``) for ``--steps`` steps from the cache with ``data.workers`` = 0 and 2, each in
   a child process: peak RSS (VmHWM) of the trainer and of each DataLoader worker, images/s.
4. Throughput on a subset that fits in memory (``data.limit``): the cache vs the in-memory path
   (``data.cache=off``), same steps, same seed, training CPU time only: once as separate
   processes, and once taking turns in one process with one net (what the goal is judged on:
   on a shared machine the CPU's speed drifts between processes run minutes apart).

Run: ``python -m benchmarks.bigfolder [--n 200000] [--steps 200] [--subset 20000]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

from .common import (Reporter, build_dataset, build_state, check_stop, cli, finish, header, make_parser, resolve,
                     run_child, train_step)

FOLDER = Path.home() / ".cache" / "ganforge" / "benchmarks" / "bigfolder"  # 781 MB of PNGs
PER_DIR = 1000  # files per subfolder
DONE = ".complete"  # written last by the generator: {"n": N, "seed": S}


def _shape_image(seed: int):
    """One 64x64 RGB picture: a random background and 1-4 random coloured ellipses/rectangles."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (64, 64), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(1, 5))):
        x0, y0 = (int(v) for v in rng.integers(0, 48, 2))
        x1, y1 = x0 + int(rng.integers(8, 40)), y0 + int(rng.integers(8, 40))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return im


def _write_range(args) -> int:
    folder, start, stop, seed = args
    for i in range(start, stop):
        path = Path(folder) / f"{i // PER_DIR:04d}" / f"{i:07d}.png"
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.png")
        _shape_image(seed * 1_000_003 + i).save(tmp, compress_level=1)
        os.replace(tmp, path)
    return stop - start


def generate_folder(folder: Path, n: int, seed: int = 0, processes: int = 2) -> float:
    """Write the N images (skipping those already there); returns the wall seconds spent."""
    folder = Path(folder)
    done = folder / DONE
    if done.is_file() and json.loads(done.read_text()) == {"n": n, "seed": seed}:
        return 0.0
    done.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    chunks = [(str(folder), a, min(a + PER_DIR, n), seed) for a in range(0, n, PER_DIR)]
    with mp.get_context("fork").Pool(processes) as pool:
        for _ in pool.imap_unordered(_write_range, chunks):
            check_stop()
    done.write_text(json.dumps({"n": n, "seed": seed}))
    return time.perf_counter() - t0



# -- memory of a process and its children ---------------------------------------------------------

def proc_status(pid: int | str = "self") -> dict:
    """VmHWM (peak RSS), VmRSS, RssAnon, RssFile of a process in MB from /proc (empty when gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0]) / 1024  # kB -> MB
    except (OSError, ValueError):
        pass
    return out


def children_of(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


class PeakWatcher:
    """A thread that polls the peak RSS (VmHWM) of this process's children every 0.2 s (DataLoader
    workers, decoding processes): VmHWM is a running peak, so the last reading of each is its peak."""

    def __init__(self):
        import threading

        self.peaks: dict[int, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.2):
            for c in children_of(os.getpid()):
                st = proc_status(c)
                if st:
                    self.peaks[c] = st

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def du_mb(path: Path) -> float:
    """Disk space used under ``path`` (allocated blocks), MB."""
    total = 0
    for p in Path(path).rglob("*"):
        if p.is_file():
            total += p.stat().st_blocks * 512
    return total / 2**20


# -- the children: one cache build, one training run each ----------------------------------------------

def overrides(spec: dict) -> list[str]:
    return [f"data.name=folder:{spec['folder']}", f"data.root={spec['root']}", "data.image_size=64",
            f"data.cache={spec['cache']}", f"data.workers={spec['workers']}", f"data.limit={spec['limit']}",
            f"seed={spec['seed']}", "train.progress=false", "train.threads=1", "train.device=cpu",
            f"train.batch_size={spec['batch']}", f"train.steps={spec['steps']}",
            f"model.g.width={spec['width']}", f"model.d.width={spec['width']}"]


def child_build(spec: dict) -> dict:
    import resource

    cfg = resolve("dcgan", overrides=overrides(spec))
    t0, c0 = time.perf_counter(), time.process_time()
    with PeakWatcher() as watch:
        src = build_dataset(cfg)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"n": len(src), "seconds": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0 + kids.ru_utime + kids.ru_stime,
            "cache": str(getattr(src, "cache", "")), "disk_mb": du_mb(src.cache) if hasattr(src, "cache") else 0.0,
            "self": proc_status(), "workers_hwm_mb": [w.get("VmHWM", 0.0) for w in watch.peaks.values()],
            "description": src.description}


def child_train(spec: dict) -> dict:
    """Build the state (the cache is opened, or the subset decoded into memory), then time
    ``steps`` training steps: process CPU time and wall time of the steps only."""
    import torch

    torch.set_num_threads(1)
    cfg = resolve("dcgan", overrides=overrides(spec))
    t_open = time.perf_counter()
    state = build_state(cfg)
    t_open = time.perf_counter() - t_open
    rep, cpu = Reporter(), 0.0
    with PeakWatcher() as watch:
        t0 = time.perf_counter()
        for _ in range(spec["steps"]):
            c0 = time.process_time()
            train_step(state, rep)
            cpu += time.process_time() - c0
            if state.step % 50 == 0:
                rep.flush()
                check_stop()
        wall = time.perf_counter() - t0
        workers = [w.get("VmHWM", 0.0) for w in watch.peaks.values()]
    images = spec["steps"] * spec["batch"]
    return {"n": len(state.data), "kind": type(state.data).__name__, "open_s": t_open, "steps": spec["steps"],
            "cpu_s": cpu, "wall_s": wall, "img_per_cpu_s": images / cpu, "img_per_wall_s": images / wall,
            "self": proc_status(), "workers_hwm_mb": workers}


def child_compare(spec: dict) -> dict:
    """One process, one net: the subset's cache and the same subset decoded into memory take turns
    as the training data, ``block`` steps at a time, so that a busy machine's drift in CPU speed
    falls on both alike; training CPU time per source."""
    import torch

    torch.set_num_threads(1)
    cfg = resolve("dcgan", overrides=overrides({**spec, "cache": "on"}))
    state = build_state(cfg)
    sources = {"cache": state.data, "memory": build_dataset(resolve("dcgan", overrides=overrides({**spec, "cache": "off"})))}
    kinds = {k: type(v).__name__ for k, v in sources.items()}
    rep, cpu = Reporter(), {k: 0.0 for k in sources}
    for _ in range(spec["steps"] // spec["block"]):
        for name, src in sources.items():
            state.data = src
            for _ in range(spec["block"]):
                c0 = time.process_time()
                train_step(state, rep)
                cpu[name] += time.process_time() - c0
            rep.flush()
            check_stop()
    images = spec["steps"] // spec["block"] * spec["block"] * spec["batch"]
    return {"kinds": kinds, "cpu_s": cpu, "img_per_cpu_s": {k: images / v for k, v in cpu.items()}}


def run_spec(what: str, spec: dict) -> dict:
    check_stop()
    argv = [sys.executable, "-m", "benchmarks.bigfolder", "--child", what, json.dumps(spec)]
    res = run_child(argv, timeout=6 * 3600)
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- the benchmark ------------------------------------------------------------------------------------

def cache_and_training(args, base: dict) -> dict:
    """A fresh build of the whole folder's cache, then training from it with 0 and 2 workers."""
    import shutil
    shutil.rmtree(Path(args.work) / "root" / "cache", ignore_errors=True)  # time a fresh build
    rows = {}
    build = run_spec("build", {**base, "cache": "on", "workers": args.build_workers, "limit": 0})
    rows["build"] = build
    print(f"cache build: {build['n']} images in {build['seconds']:.0f} s wall, {build['cpu_s']:.0f} s CPU "
          f"({args.build_workers} decoding processes), {build['disk_mb']:.0f} MB on disk; peak RSS builder "
          f"{build['self'].get('VmHWM', 0):.0f} MB, decoders {max(build['workers_hwm_mb'] or [0]):.0f} MB", flush=True)
    for workers in (0, 2):
        r = run_spec("train", {**base, "cache": "on", "workers": workers, "limit": 0})
        rows[f"train_full_w{workers}"] = r
        print(f"train from the {r['n']}-image cache, data.workers={workers}: peak RSS {r['self']['VmHWM']:.0f} MB "
              f"(at the end: anon {r['self'].get('RssAnon', 0):.0f} MB, file-backed {r['self'].get('RssFile', 0):.0f} MB)"
              f", workers' peaks {[round(w) for w in r['workers_hwm_mb']]} MB; {r['img_per_cpu_s']:.0f} img/CPU-s, "
              f"{r['img_per_wall_s']:.0f} img/s wall; opened in {r['open_s']:.1f} s", flush=True)
    return rows


def main(args) -> int:
    seed = args.seeds[0]
    folder, work = Path(args.folder), Path(args.work)
    header(args, f"{args.n} generated 64x64 RGB PNGs in {folder} (seed {seed}), caches under {work}/root; "
                 f"dcgan 64 px (width {args.width}), batch {args.batch}, {args.steps} timed steps per run, 1 torch thread; "
                 f"throughput subset {args.subset} images", seeds=[seed])
    gen_s = generate_folder(folder, args.n, seed)
    print(f"folder: {args.n} files, {du_mb(folder):.0f} MB on disk" +
          (f", generated in {gen_s:.0f} s" if gen_s else " (generated before)"), flush=True)
    base = {"folder": str(folder), "root": str(work / "root"), "seed": seed, "batch": args.batch,
            "steps": args.steps, "width": args.width}
    rows = {}
    if args.parts != "subset":
        rows.update(cache_and_training(args, base))
    for rep in range(args.repeats):
        for cache in ("on", "off"):
            r = run_spec("train", {**base, "cache": cache, "workers": 0, "limit": args.subset})
            rows[f"subset_{cache}_{rep}"] = r
            print(f"subset {args.subset} ({'cache' if cache == 'on' else 'in memory'}, {r['kind']}), repeat {rep}: "
                  f"{r['img_per_cpu_s']:.1f} img/CPU-s, {r['img_per_wall_s']:.1f} img/s wall, peak RSS "
                  f"{r['self']['VmHWM']:.0f} MB; built/opened in {r['open_s']:.1f} s", flush=True)
    on = [rows[f"subset_on_{i}"]["img_per_cpu_s"] for i in range(args.repeats)]
    off = [rows[f"subset_off_{i}"]["img_per_cpu_s"] for i in range(args.repeats)]
    ratio = (sum(on) / len(on)) / (sum(off) / len(off))
    print(f"throughput cache / in memory (img per CPU-s, mean of {args.repeats}): {ratio:.3f}")
    inter = rows["interleaved"] = run_spec("compare", {**base, "workers": 0, "limit": args.subset,
                                                       "steps": args.interleaved_steps, "block": args.block})
    tp = inter["img_per_cpu_s"]
    i_ratio = tp["cache"] / tp["memory"]
    print(f"interleaved in one process ({args.interleaved_steps} steps each, blocks of {args.block}): cache "
          f"{tp['cache']:.1f}, in memory {tp['memory']:.1f} img per CPU-s, ratio {i_ratio:.3f}", flush=True)
    table = "\n".join(["| measurement | value |", "| --- | --- |"] + (big_rows(args, rows, folder)
                                                                  if args.parts != "subset" else []) + [
        f"| subset {args.subset}: cache vs in memory (workers=0, {args.repeats} runs each) | "
        f"{sum(on) / len(on):.1f} vs {sum(off) / len(off):.1f} img per CPU-s (runs: {', '.join(f'{v:.1f}' for v in on)} "
        f"vs {', '.join(f'{v:.1f}' for v in off)}), ratio {ratio:.3f} |",
        f"| subset {args.subset}: cache vs in memory taking turns in one process ({args.interleaved_steps} steps each, "
        f"blocks of {args.block}) | {tp['cache']:.1f} vs {tp['memory']:.1f} img per CPU-s, ratio {i_ratio:.3f} |",
    ])
    return finish(args, rows, table, ratio=ratio, interleaved_ratio=i_ratio)


def big_rows(args, rows, folder) -> list[str]:
    build, w0, w2 = rows["build"], rows["train_full_w0"], rows["train_full_w2"]
    return [
        f"| folder | {args.n} PNGs 64x64 RGB, {du_mb(folder):.0f} MB on disk |",
        f"| cache build ({args.build_workers} decoding processes) | {build['seconds']:.0f} s wall, {build['cpu_s']:.0f} s CPU |",
        f"| cache size on disk | {build['disk_mb']:.0f} MB ({build['n']} images) |",
        f"| peak RSS building (builder / decoders) | {build['self'].get('VmHWM', 0):.0f} / "
        f"{max(build['workers_hwm_mb'] or [0]):.0f} MB |",
        f"| peak RSS training, workers=0 | {w0['self']['VmHWM']:.0f} MB |",
        f"| peak RSS training, workers=2 (trainer / each worker) | {w2['self']['VmHWM']:.0f} / "
        f"{max(w2['workers_hwm_mb'] or [0]):.0f} MB |",
        f"| throughput from the 200k cache, workers=0 / 2 | {w0['img_per_cpu_s']:.0f} / {w2['img_per_cpu_s']:.0f} "
        f"img per trainer CPU-s; {w0['img_per_wall_s']:.0f} / {w2['img_per_wall_s']:.0f} img/s wall |",
    ]


parser = make_parser("bigfolder", __doc__.split("\n\n")[0], seeds="the folder's and the runs' seed (the first; default 0)")
parser.add_argument("--n", type=int, default=200_000, help="images in the generated folder (default 200000)")
parser.add_argument("--steps", type=int, default=200, help="timed training steps per run (default 200)")
parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
parser.add_argument("--width", type=int, default=16, help="dcgan's model.g.width and model.d.width (default 16; "
                    "64 is the paper's, 16x the compute)")
parser.add_argument("--subset", type=int, default=20_000, help="images of the in-memory comparison (default 20000)")
parser.add_argument("--repeats", type=int, default=1, help="runs of each side of the comparison (default 1)")
parser.add_argument("--interleaved-steps", type=int, default=600,
                    help="steps from each source in the one-process comparison (default 600)")
parser.add_argument("--block", type=int, default=20, help="steps per turn in the one-process comparison (default 20)")
parser.add_argument("--build-workers", type=int, default=2, help="decoding processes of the cache build (default 2)")
parser.add_argument("--folder", default=str(FOLDER), help=f"where the images are generated (default {FOLDER})")
parser.add_argument("--work", default=str(FOLDER.parent / "bigfolder-work"), help="data root of the caches (2.4 GB)")
parser.add_argument("--parts", choices=("all", "subset"), default="all",
                    help="all, or only the cache vs in-memory throughput comparison (subset)")
parser.add_argument("--child", nargs=2, metavar=("WHAT", "SPEC"), help=argparse.SUPPRESS)

if __name__ == "__main__":
    if "--child" in sys.argv:  # one measured step in its own process: prints one JSON line
        what, spec = sys.argv[sys.argv.index("--child") + 1:][:2]
        child = {"build": child_build, "train": child_train, "compare": child_compare}[what]
        print(json.dumps(child(json.loads(spec))))
    else:
        cli(parser, main)
