"""Style-based vs DCGAN on Fashion-MNIST at fixed CPU budgets: FID, PPL in z and w, projection.

    python benchmarks/stylegan.py [--presets dcgan,stylegan2] [--budgets 2,5,10,20] [--seed 0]
                                  [--n 10000] [--ppl-n 10000] [--project-n 100] [--project-steps 300]
                                  [--measure-at 10] [--threads 1] [--json out.json]

Each preset trains on Fashion-MNIST with its own defaults (model.size=auto: the CPU size here) in
this process, one torch thread, until its training has used each budget of process CPU time
(``time.process_time`` around the training steps only: evaluation, projection and start-up are
not counted). At every budget the generator (its EMA when the preset keeps one) is measured:

- FID: ``ganforge.evaluation.evaluate`` with the ``fmnist`` extractor, ``--n`` samples against
  fashion-mnist:test (10,000 images), seed 0;
- PPL: the ``ppl`` metric (full paths, epsilon 1e-4, 1st-99th percentile mean) over ``--ppl-n``
  paths, in z for every generator and in w for style-based ones; the distance it used is printed;
- projection: the first ``--project-n`` Fashion-MNIST *test* images (never seen in training) are
  projected (``ganforge.project.project``, ``--project-steps`` Adam steps, pixel MSE + the fmnist
  feature distance) into z for every generator and into w and w+ for style-based ones; mean PSNR
  (dB, on [-1, 1]) and mean feature distance of the reconstructions.

``--measure-at`` limits PPL and projection to some budgets (FID is measured at every budget).

Prints the command, seed, commit and versions beside the table. Several presets run one after the
other in this process; run one process per preset to use several cores.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python benchmarks/stylegan.py` or `python -m benchmarks.stylegan`

import torch  # noqa: E402

from benchmarks.common import (FeatureDistance, Reporter, TrainedGenerator, build_state, evaluate,  # noqa: E402
                               load_reference, project, psnr, resolve, train_step, validate)


def commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def snapshot(state) -> TrainedGenerator:
    """The current generator (EMA when kept) as a loaded model, detached from training."""
    net = copy.deepcopy(state.G_ema.module if state.G_ema is not None else state.G)
    return TrainedGenerator(net, state.cfg, args=state.g_args, step=state.step, ema=state.G_ema is not None)


def projection_scores(model, targets, spaces, steps: int, distance, seed: int) -> dict[str, float]:
    out = {}
    for space in spaces:
        gen = torch.Generator().manual_seed(seed)
        res = project(model.net, targets, space=space, steps=steps, perceptual=distance, generator=gen,
                      frame_every=0)
        with torch.no_grad():
            out[f"proj_psnr_{space}"] = psnr(res.image, targets).mean().item()
            out[f"proj_feat_{space}"] = distance(res.image, targets).mean().item()
    return out


def measure(model, args, targets, distance, full: bool = True) -> tuple[dict, dict]:
    if not full:  # FID only (the budgets outside --measure-at)
        ev = evaluate(model, metrics="fid", n=args.n, seed=0, ref="fashion-mnist:test", features="fmnist",
                      progress=False)
        return dict(ev["results"]), ev["provenance"]
    ev = evaluate(model, metrics="fid,ppl", n=args.n, seed=0, ref="fashion-mnist:test", features="fmnist",
                  progress=False) if args.n == args.ppl_n else None
    if ev is None:  # different sample counts: two evaluations
        fid = evaluate(model, metrics="fid", n=args.n, seed=0, ref="fashion-mnist:test", progress=False)
        ev = evaluate(model, metrics="ppl", n=args.ppl_n, seed=0, progress=False)
        ev["results"].update(fid["results"])
    spaces = ("z", "w", "w+") if model.style_based else ("z",)
    res = dict(ev["results"])
    res.update(projection_scores(model, targets, spaces, args.project_steps, distance, args.seed))
    return res, ev["provenance"]


def run_preset(preset: str, args, targets, distance) -> list[dict]:
    cfg = validate(resolve(preset, overrides=[f"seed={args.seed}", f"train.threads={args.threads}",
                                              "train.device=cpu", "train.progress=false", "train.steps=100000000",
                                              "train.sample_every=0", "train.ckpt_every=0", "out=/nonexistent"]))
    torch.set_num_threads(args.threads)
    state = build_state(cfg)
    report = Reporter()
    rows, used = [], 0.0
    for budget in sorted(args.budgets):
        while used < budget * 60:
            t0 = time.process_time()
            train_step(state, report)
            used += time.process_time() - t0
            if state.step % 100 == 0:
                report.flush()
        full = args.measure_at is None or budget in args.measure_at
        results, prov = measure(snapshot(state), args, targets, distance, full=full)
        row = {"preset": preset, "size": state.cfg.model.size, "cpu_minutes": budget, "train_cpu_s": round(used, 2), "step": state.step,
               **results, "ppl_distance": prov.get("ppl_distance", "-")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


COLUMNS = ("preset", "size", "cpu_minutes", "step", "fid", "ppl_z", "ppl_w", "proj_psnr_z", "proj_psnr_w", "proj_psnr_w+",
           "proj_feat_z", "proj_feat_w", "proj_feat_w+")


def table(rows: list[dict]) -> str:
    def cell(v):
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="dcgan,stylegan2")
    p.add_argument("--budgets", default="2,5,10,20", help="process CPU-minutes of training, comma-separated")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=10000, help="samples for FID (default 10000)")
    p.add_argument("--ppl-n", type=int, default=10000, help="paths for PPL (default 10000)")
    p.add_argument("--project-n", type=int, default=100, help="test images to project (default 100)")
    p.add_argument("--project-steps", type=int, default=300)
    p.add_argument("--measure-at", default=None,
                   help="budgets at which PPL and projection are measured too (default: every budget; FID always)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the rows and provenance here")
    args = p.parse_args(argv)
    args.budgets = [float(b) for b in args.budgets.split(",")]
    args.measure_at = None if args.measure_at is None else [float(b) for b in args.measure_at.split(",")]
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"seed {args.seed}, commit {commit()}, torch {torch.__version__}, python {platform.python_version()}, "
          f"threads {args.threads}")
    torch.set_num_threads(args.threads)
    targets = load_reference("fashion-mnist:test").images[:args.project_n].float().div(127.5).sub(1)
    distance = FeatureDistance()
    rows = []
    for preset in args.presets.split(","):
        rows += run_preset(preset.strip(), args, targets, distance)
    print(table(rows))
    print(f"PPL distance: {next((r['ppl_distance'] for r in rows if r['ppl_distance'] != '-'), '-')}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "args": vars(args), "commit": commit(),
                                               "command": sys.argv}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
