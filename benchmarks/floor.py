"""The evaluation floor: real Fashion-MNIST train images vs the test split through the quality
benchmark's pipeline (features fmnist; FID, KID, P/R, D/C, IS), and how long that pipeline takes.

    python -m benchmarks.floor --threads 1
"""

from __future__ import annotations

import time

import torch

from .common import (cli, compute, finish, get_feature_extractor, header, load_split, make_parser, parse_metrics,
                     reference_features)

QUALITY_METRICS = "fid,kid,pr,dc,is"


def floor(n: int = 10000, seed: int = 0) -> dict:
    """Real Fashion-MNIST train images vs the test split through the same pipeline, and the time
    the pipeline takes for 10k vs 10k (features + FID + KID + P/R + D/C)."""
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
    print("floor (10k train vs 10k test): " + ", ".join(f"{k} {v:.4g}" for k, v in r.items()))
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
    header(args, f"10000 fashion-mnist train images (seed {args.seeds[0]}) vs the 10000 test images, "
                 f"features fmnist, metrics {QUALITY_METRICS}", seeds=args.seeds[:1])
    fl = floor(seed=args.seeds[0])
    return finish(args, {"floor": fl}, quality_table([], fl))


parser = make_parser("floor", __doc__.split("\n\n")[0], seeds="comma-separated seeds; the first picks the "
                     "10000 train images (default 0,1,2)")

if __name__ == "__main__":
    cli(parser, main)
