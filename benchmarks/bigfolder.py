"""A folder larger than memory: the dataset cache's build time and size, peak memory while
training from it, and its training throughput against the in-memory path.

1. Generate (once; kept for reruns) a folder of N 64x64 RGB PNG images of random coloured shapes,
   seeded per image, written by two processes, in subfolders of 1000 files.
2. Build the cache of the whole folder in a child process (``data.cache=on``): wall and CPU time,
   size on disk, the child's peak RSS.
3. Train dcgan at 64 px for ``--steps`` steps from the cache with ``data.workers`` = 0 and 2, each in
   a child process: peak RSS (VmHWM) of the trainer and of each DataLoader worker, images/s.
4. Throughput on a subset that fits in memory (``data.limit``): the cache vs the in-memory path
   (``data.cache=off``), same steps, same seed, training CPU time only.

Run: ``python -m benchmarks.bigfolder [--n 200000] [--steps 200] [--subset 20000]``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

from .common import check_stop, cli, finish, header, make_parser, run_child

FOLDER = Path("/work/results/bigfolder")
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


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--generate-only":
    print(f"generated in {generate_folder(FOLDER, int(sys.argv[2]), 0):.0f} s")
    sys.exit(0)
