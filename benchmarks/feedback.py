"""How fast the command line answers a user mistake: wall seconds from start to exit of a fresh
``python -m ganforge ...`` process per case (median and maximum of ``--repeats``), beside a process
that only imports torch (what every answer would cost if the CLI imported torch first).

    python -m benchmarks.feedback --repeats 5
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from .common import cli, finish, header, make_parser, quote, run_child


def feedback_cases(work: Path) -> list[dict]:
    """The mistakes (each must exit 2 with one ``error:`` line) and the torch-import reference."""
    gf = [sys.executable, "-m", "ganforge"]
    return [
        {"case": "unknown config key", "argv": [*gf, "train", "dcgan", "--set", "train.stepz=1"], "expect": 2},
        {"case": "bad config value", "argv": [*gf, "train", "dcgan", "--set", "train.steps=abc"], "expect": 2},
        {"case": "unknown preset", "argv": [*gf, "train", "nosuchpreset"], "expect": 2},
        {"case": "missing run folder (eval)", "argv": [*gf, "eval", str(work / "no-such-run")], "expect": 2},
        {"case": "reference: import torch alone", "argv": [sys.executable, "-c", "import torch"], "expect": 0},
    ]


def time_case(case: dict, repeats: int) -> dict:
    """Wall seconds of ``repeats`` fresh processes of ``case``; its exit status and first stderr line."""
    seconds, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = run_child(case["argv"], timeout=300, check=False)
        seconds.append(time.perf_counter() - t0)
    errors = [ln for ln in res.stderr.splitlines() if ln.strip()]
    one_error_line = len(errors) == 1 and errors[0].startswith("error:")
    ok = res.returncode == case["expect"] and (case["expect"] == 0 or one_error_line)
    return {"case": case["case"], "command": quote(case["argv"]), "exit": res.returncode, "ok": ok,
            "first_line": errors[0] if errors else "", "median_s": statistics.median(seconds),
            "max_s": max(seconds), "repeats": repeats}


def feedback_table(rows: list[dict]) -> str:
    lines = ["| case | exit | median s | max s | first line of stderr |", "| --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['exit']}{'' if r['ok'] else ' (unexpected)'} | {r['median_s']:.2f} | "
                     f"{r['max_s']:.2f} | {r['first_line'][:90]} |")
    return "\n".join(lines)


def main(args) -> int:
    header(args, f"{args.repeats} fresh processes per case, wall seconds start to exit", seeds=[])
    with tempfile.TemporaryDirectory() as work:
        rows = []
        for case in feedback_cases(Path(work)):
            rows.append(time_case(case, args.repeats))
            r = rows[-1]
            print(f"{'ok ' if r['ok'] else 'BUG'} {r['case']:32s} exit {r['exit']}  median {r['median_s']:.2f} s  "
                  f"max {r['max_s']:.2f} s", flush=True)
    finish(args, rows, feedback_table(rows))
    return 0 if all(r["ok"] for r in rows) else 1


parser = make_parser("feedback", __doc__.split("\n\n")[0])
parser.add_argument("--repeats", type=int, default=5, help="fresh processes per case (default 5)")

if __name__ == "__main__":
    cli(parser, main)
