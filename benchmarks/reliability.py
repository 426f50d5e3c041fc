"""Reliability: (a) resume equivalence: N steps uninterrupted vs N/2, stop, ``--resume`` to N, each
in its own process; (b) the kill -9 drill: SIGKILL at a random step, resume, steps lost; (c) bad
inputs through the real CLI (see benchmarks/bad_inputs.py), with a control showing that the
planted malicious pickle is live.

    python -m benchmarks.reliability --seeds 0 --json reliability.json
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from .bad_inputs import plant_pickle, bad_inputs
from .common import (cli, finish, header, latest_checkpoint, list_checkpoints, load_checkpoint, make_parser,
                     only_run, quote, read_metrics, reap, run_child, spawn, train_argv)

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
    cases = RESUME_CASES if cases is None else cases
    common = RESUME_COMMON if common is None else common
    rows = []
    for name, (preset, own) in cases.items():
        over = list(common) + list(own) + list(extra) + [f"seed={seed}"]
        n = int([o for o in over if o.startswith("train.steps=")][-1].split("=")[1])
        half = n // 2
        base = Path(work) / f"resume-{name.replace('+', '-')}"
        t0 = time.perf_counter()
        full_argv = train_argv(preset, over + [f"out={base / 'full'}"])
        half_argv = train_argv(preset, over + [f"train.steps={half}", f"out={base / 'half'}"])
        run_child(full_argv)
        run_child(half_argv)
        run_f, run_h = only_run(base / "full"), only_run(base / "half")
        resume_argv = [sys.executable, "-m", "ganforge", "train", "--resume", str(run_h), "--set",
                       f"train.steps={n}"]
        run_child(resume_argv)
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
            "commands": [quote(full_argv), quote(half_argv), quote(resume_argv)],
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

    over = (list(DRILL_COMMON if overrides is None else overrides) + [f"train.steps={steps}",
            f"train.ckpt_every={k}", "train.log_every=1"] + list(extra) + [f"seed={seed}"])
    if 6 * k >= steps:
        raise ValueError(f"the kill window (3k, 6k) must end before train.steps ({steps})")
    work = Path(work)
    ref = None
    if compare:
        run_child(train_argv(preset, over + [f"out={work / 'drill-reference'}"]), timeout=timeout)
        ref = load_checkpoint(latest_checkpoint(only_run(work / "drill-reference") / "checkpoints"))
    rows = []
    for i in range(repeats):
        rng = random.Random(seed * 1000 + i)
        target, delay = rng.randint(3 * k + 1, 6 * k - 1), rng.uniform(0.0, 0.5)
        parent = work / f"drill-{i}"
        argv = train_argv(preset, over + [f"out={parent}"])
        parent.mkdir(parents=True, exist_ok=True)
        with open(work / f"drill-{i}.stderr", "w") as err:  # a file, not a pipe: nothing can block the child
            proc = spawn(argv, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
            try:
                deadline = time.time() + timeout
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"drill {i}: the run ended (exit {proc.returncode}) before step {target}: "
                                           f"{(work / f'drill-{i}.stderr').read_text()[-2000:]}")
                    if time.time() > deadline:
                        raise RuntimeError(f"drill {i}: no step {target} within {timeout} s")
                    runs = [p for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
                    if runs and _last_logged_step(runs[0] / "metrics.jsonl") >= target:
                        run = runs[0]
                        break
                    time.sleep(0.02)
                time.sleep(delay)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
            finally:
                reap(proc)
        at_kill = _last_logged_step(run / "metrics.jsonl")
        ckpts = [_ckpt_step(p) for p in list_checkpoints(run / "checkpoints")]
        latest = latest_checkpoint(run / "checkpoints")
        debris = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("."))
        res = run_child([sys.executable, "-m", "ganforge", "train", "--resume", str(run)], timeout=timeout,
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
            "command": quote(train_argv(preset, over + ["out=OUT"]))}


# bad inputs ------------------------------------------------------------------------------------
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
            plant_pickle(ck, marker)
            code = f"import torch; torch.load({str(ck / 'state.pt')!r}, weights_only=False)"
            run_child([sys.executable, "-c", code], timeout=120, check=False)
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
    seed = args.seeds[0]
    header(args, f"resume equivalence {RESUME_COMMON} per preset {RESUME_CASES}; kill -9 drill "
                 f"{DRILL_PRESET} {DRILL_COMMON} steps {DRILL_STEPS}, ckpt_every {DRILL_K}, {DRILL_REPEATS} kills, "
                 f"seed {seed}; bad inputs through the CLI", seeds=[seed])
    rows = reliability(out=args.out, seed=seed, extra=list(args.set or []))
    return finish(args, rows, reliability_tables(rows))


parser = make_parser("reliability", __doc__.split("\n\n")[0],
                     seeds="comma-separated seeds; the first is used (default 0,1,2)", set=True, out=True)

if __name__ == "__main__":
    cli(parser, main)
