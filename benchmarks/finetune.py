"""Fine-tuning from a saved model vs training from scratch on 1,000 Fashion-MNIST images of two classes.

A dcgan is pretrained on the other eight classes for a CPU budget and saved (a run folder and a
model folder); then, on the first 1,000 train images of the two classes, runs start from scratch
and from the saved weights (G from the model folder; G and D from the run folder; G and D with
FreezeD) and are evaluated every N CPU-seconds of training: FID (fmnist features) of n generated
images against the test images of the two classes. It reports the FID curves and the CPU-minutes
each run needs to reach a target FID (default: the FID scratch training has at the end of its budget).

    python -m benchmarks.finetune --threads 1 --jobs 3 --json finetune.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .common import (ROOT, Reporter, build_state, check_stop, cli, evaluate_generator, finish, get_feature_extractor,
                     header, make_parser, quote, reap, resolve, save_model_folder, save_state_run, seeded_sampler,
                     spawn, train_for_cpu, validate)

NUM_CLASSES = 10  # Fashion-MNIST
# row -> (where train.init points: None = from scratch, "model" = the model folder, "run" = the run
# folder; train.init_what; whether train.freeze_d = --freeze-d)
ROWS = {
    "scratch": (None, "g", False),
    "finetune-g": ("model", "g", False),
    "finetune-gd": ("run", "gd", False),
    "finetune-gd-freezed": ("run", "gd", True),
}


def row_overrides(args, row: str, work: Path) -> list[str]:
    """The config overrides of one row's run (on top of the dcgan preset)."""
    src, what, freeze = ROWS[row]
    out = [f"seed={args.seeds[0]}", "train.progress=false", "train.steps=100000000", f"out={work}",
           f"data.classes=[{','.join(map(str, args.classes))}]", f"data.limit={args.limit}"]
    if src:
        out += [f"train.init={work / ('pretrain-model' if src == 'model' else 'pretrain-run')}",
                f"train.init_what={what}"]
    if freeze:
        out.append(f"train.freeze_d={args.freeze_d}")
    return out


def fid(state, args, ext, ref: str) -> float:
    """FID of ``args.n`` samples of the state's generator (eval mode, seeded) against ``ref``."""
    net = state.sampler_net
    net.eval()
    try:
        sample = seeded_sampler(net, state.cfg, state.device, state.data.num_classes)
        out = evaluate_generator(sample, metrics="fid", n=args.n, ref=ref, extractor=ext, seed=args.seeds[0])
    finally:
        net.train()
    return float(out["results"]["fid"])


def target_ref(classes) -> str:
    return f"fashion-mnist:test@{','.join(map(str, classes))}"


def curve(args, row: str, work: Path, ext) -> dict:
    """Train one row for ``args.budget`` CPU-minutes, evaluating at 0 and every ``args.every`` CPU-s."""
    overrides = row_overrides(args, row, work)
    state = build_state(validate(resolve("dcgan", overrides=overrides)))
    rep, spent, t, points = Reporter(), 0.0, 0.0, []
    budget = args.budget * 60
    while True:
        value = fid(state, args, ext, target_ref(args.classes))
        points.append({"t_s": t, "cpu_s": spent, "step": state.step, "fid": value})
        print(f"{row:20s} {t / 60:5.2f} CPU-min (measured {spent:6.1f} s, step {state.step:5d}): FID {value:7.2f}",
              flush=True)
        if t >= budget:
            return {"row": row, "points": points, "overrides": overrides, "data": state.data.description}
        t = min(t + args.every, budget)
        spent = train_for_cpu(state, rep, t, spent)


def pretrain(args, work: Path, ext) -> dict:
    """The dcgan trained on the other classes for ``args.pretrain`` CPU-minutes, saved as
    ``work/pretrain-run`` (run folder) and ``work/pretrain-model`` (model folder)."""
    others = [c for c in range(NUM_CLASSES) if c not in args.classes]
    overrides = [f"seed={args.seeds[0]}", "train.progress=false", "train.steps=100000000", f"out={work}",
                 f"data.classes=[{','.join(map(str, others))}]"]
    state = build_state(validate(resolve("dcgan", overrides=overrides)))
    spent = train_for_cpu(state, Reporter(), args.pretrain * 60)
    run = save_state_run(state, work / "pretrain-run")
    model = save_model_folder(run, work / "pretrain-model")
    own = fid(state, args, ext, target_ref(others))
    print(f"pretrain on classes {others}: {spent / 60:.2f} CPU-min, step {state.step}, "
          f"FID {own:.2f} vs its own classes' test images; saved {run} and {model}", flush=True)
    return {"classes": others, "cpu_s": spent, "step": state.step, "fid_own_classes": own, "overrides": overrides,
            "run": str(run), "model": str(model)}


# -- rows in parallel child processes (--jobs): the same CPU budgets, only the wall time changes ----

class Children:
    """Rows run as ``python -m benchmarks.finetune --row ROW`` children, at most ``jobs`` at a time."""

    def __init__(self, args, work: Path):
        self.args, self.work, self.active, self.done = args, work, {}, {}

    def argv(self, row: str) -> list[str]:
        a = self.args
        return [sys.executable, "-m", "benchmarks.finetune", "--row", row, "--work", str(self.work),
                "--threads", str(a.threads), "--seeds", str(a.seeds[0]), "--classes", ",".join(map(str, a.classes)),
                "--limit", str(a.limit), "--budget", str(a.budget), "--every", str(a.every), "--n", str(a.n),
                "--freeze-d", str(a.freeze_d), "--json", str(self.work / f"{row}.json")]

    def start(self, row: str) -> None:
        while len(self.active) >= self.args.jobs:
            self.poll()
            time.sleep(1)
        log = open(self.work / f"{row}.log", "w")
        argv = self.argv(row)
        print(f"started `{quote(argv)}`", flush=True)
        proc = spawn(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT)
        self.active[row] = (proc, log)

    def poll(self) -> None:
        for row, (proc, log) in list(self.active.items()):
            if proc.poll() is None:
                continue
            log.close()
            reap(proc)
            del self.active[row]
            check_stop()
            text = (self.work / f"{row}.log").read_text()
            if proc.returncode != 0:
                raise RuntimeError(f"row {row} exited {proc.returncode}:\n{text[-3000:]}")
            print(text, end="", flush=True)
            self.done[row] = json.loads((self.work / f"{row}.json").read_text())

    def wait(self) -> dict:
        while self.active:
            self.poll()
            time.sleep(1)
        return self.done


# -- the report ----------------------------------------------------------------------------------------

def reach(points, target: float) -> float | None:
    """CPU-seconds of training at the first evaluation with FID <= target (its scheduled time: the
    measured one is at most one step later); None if never."""
    return next((p["t_s"] for p in points if p["fid"] <= target), None)


def tables(results: dict, target: float, pre: dict | None) -> str:
    rows = list(results)
    ts = sorted({p["t_s"] for r in results.values() for p in r["points"]})
    at = {r: {p["t_s"]: p["fid"] for p in results[r]["points"]} for r in rows}
    lines = ["| CPU-min | " + " | ".join(f"FID {r}" for r in rows) + " |", "| ---: |" + " ---: |" * len(rows)]
    for t in ts:
        lines.append(f"| {t / 60:.2f} | " + " | ".join(f"{at[r][t]:.2f}" if t in at[r] else "-" for r in rows) + " |")
    base = reach(results["scratch"]["points"], target) if "scratch" in results else None
    lines += ["", f"Target FID {target:.2f}:", "",
              "| run | FID at 0 | final FID | best FID | CPU-min to target | scratch's CPU-min / this |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        pts = results[r]["points"]
        hit = reach(pts, target)
        if hit is None or base is None:
            ratio = "-"
        else:
            ratio = "reached at 0" if hit == 0 else f"{base / hit:.2f}x"
        lines.append(f"| {r} | {pts[0]['fid']:.2f} | {pts[-1]['fid']:.2f} | {min(p['fid'] for p in pts):.2f} | "
                     f"{'%.2f' % (hit / 60) if hit is not None else 'not reached'} | {ratio} |")
    if pre:
        lines += ["", f"Pretraining (not counted above): {pre['cpu_s'] / 60:.2f} CPU-min on classes "
                      f"{','.join(map(str, pre['classes']))}, step {pre['step']}, FID {pre['fid_own_classes']:.2f} "
                      f"against those classes' test images."]
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    try:
        return [int(c) for c in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated class indices expected, got {text!r}") from None


def main(args) -> int:
    ext = get_feature_extractor("fmnist")
    if args.row:  # a child of --jobs: one row, results to --json
        result = curve(args, args.row, Path(args.work), ext)
        Path(args.json).write_text(json.dumps(result, indent=1))
        return 0
    rows = args.rows.split(",")
    unknown = [r for r in rows if r not in ROWS]
    if unknown or (args.target is None and "scratch" not in rows):
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}" if unknown else
                     "without the scratch row give --target")
    seed = args.seeds[0]
    header(args, f"dcgan; pretrain {args.pretrain} CPU-min on the Fashion-MNIST classes other than {args.classes}; "
                 f"then the first {args.limit} train images of classes {args.classes}: rows {rows}, "
                 f"{args.budget} CPU-min each, FID (fmnist features) of {args.n} samples vs {target_ref(args.classes)} "
                 f"every {args.every} CPU-s; freeze_d {args.freeze_d}; jobs {args.jobs}; seed {seed}; budgets are "
                 "process CPU time of training only", seeds=[seed])
    work = Path(args.out) / f"finetune-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    work.mkdir(parents=True)
    needs_pretrain = any(ROWS[r][0] for r in rows)
    pool = Children(args, work) if args.jobs > 1 else None
    results: dict = {}
    if pool and "scratch" in rows:
        pool.start("scratch")  # needs no pretrained weights: runs beside the pretraining
    pre = pretrain(args, work, ext) if needs_pretrain else None
    for row in rows:
        if pool:
            if row != "scratch":
                pool.start(row)
        else:
            results[row] = curve(args, row, work, ext)
    if pool:
        done = pool.wait()
        results = {r: done[r] for r in rows}
    target = args.target if args.target is not None else results["scratch"]["points"][-1]["fid"]
    summary = {r: {"cpu_min_to_target": (lambda h: None if h is None else h / 60)(reach(v["points"], target)),
                   "final_fid": v["points"][-1]["fid"]} for r, v in results.items()}
    return finish(args, {"curves": results, "summary": summary}, tables(results, target, pre),
                  target_fid=target, pretrain=pre, work=str(work))


parser = make_parser("finetune", __doc__.split("\n\n")[0],
                     seeds="the seed (the first of a comma-separated list is used; default 0)", out=True)
parser.set_defaults(seeds=[0], threads=1)
parser.add_argument("--classes", type=_ints, default=[5, 7],
                    help="the two (or more) target classes (default 5,7: sandal and sneaker)")
parser.add_argument("--limit", type=int, default=1000, help="train images of the target classes (default 1000)")
parser.add_argument("--pretrain", type=float, default=8.0, help="pretraining CPU-minutes (default 8)")
parser.add_argument("--budget", type=float, default=6.0, help="CPU-minutes of training per row (default 6)")
parser.add_argument("--every", type=float, default=30.0, help="evaluate every this many CPU-seconds (default 30)")
parser.add_argument("--n", type=int, default=2000, help="generated images per FID (default 2000)")
parser.add_argument("--target", type=float, default=None,
                    help="target FID (default: the scratch row's FID at the end of its budget)")
parser.add_argument("--freeze-d", type=int, default=1, help="D blocks FreezeD keeps fixed (default 1 of dcgan's 3)")
parser.add_argument("--rows", default="scratch,finetune-g,finetune-gd,finetune-gd-freezed",
                    help=f"comma-separated rows (default all: {', '.join(ROWS)})")
parser.add_argument("--jobs", type=int, default=1,
                    help="rows trained at once in child processes (each on --threads; default 1: all in this process)")
parser.add_argument("--row", default=None, help=argparse.SUPPRESS)  # a --jobs child: run this row only
parser.add_argument("--work", default=None, help=argparse.SUPPRESS)

if __name__ == "__main__":
    cli(parser, main)
