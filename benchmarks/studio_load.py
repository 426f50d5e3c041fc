"""ganforge studio under load: page load time, server memory, and live-update latency.

    python benchmarks/studio_load.py [--runs 50] [--steps 10000] [--updates 20] [--seed 0]

Writes ``--runs`` fake run folders of ``--steps`` logged steps each (made-up metrics, 4 sample
grids, no weights; one of them "running", the rest finished) into a temporary folder, starts
``python -m ganforge studio`` on them as a separate process, and drives Debian's chromium with
Playwright:

- page load: from navigation until the runs table lists every run (median of 5 loads),
- one run: from the click until its loss chart holds all ``--steps`` points,
- compare: 5 runs overlaid,
- server RSS (from /proc) after start, after the page loads, and after opening 12 runs,
- latency: a metrics line appended to the running run's metrics.jsonl -> that step is the last
  point of the chart in the browser (``--updates`` times, one every 0.7 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import append_metrics, write_fake_run  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_runs(root: Path, n: int, steps: int, seed: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        write_fake_run(root, f"{i:05d}-fake", steps=steps, log_every=1, seed=seed + i,
                       preset=["dcgan", "hinge", "wgan-gp", "lsgan"][i % 4], result=None if i == 0 else "done")
    return time.perf_counter() - t0


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", "studio", str(root), "--stale-after", "3600"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    for line in proc.stdout:
        m = re.search(r"open (http://\S+)/#token=", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("the studio did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--steps", type=int, default=10000, help="logged steps (metrics lines) per run")
    ap.add_argument("--updates", type=int, default=20, help="appended lines for the latency measurement")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"needs {CHROMIUM} (apt-get install chromium) and playwright (pip install playwright)")
        return 2
    from playwright.sync_api import sync_playwright

    print(f"command: python benchmarks/studio_load.py --runs {args.runs} --steps {args.steps} "
          f"--updates {args.updates} --seed {args.seed}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"python {platform.python_version()}; browser {CHROMIUM} (headless, Playwright)")
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        gen_s = make_runs(root, args.runs, args.steps, args.seed)
        size = sum(p.stat().st_size for p in root.rglob("metrics.jsonl")) / 1e6
        print(f"setting: {args.runs} fake runs x {args.steps} metrics lines ({size:.0f} MB of metrics.jsonl), "
              f"written in {gen_s:.1f} s")
        proc, url = start_server(root)
        try:
            out["rss_start_mb"] = rss_mb(proc.pid)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(120_000)
                loads = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    page.goto(url + "/")
                    page.wait_for_function(f"() => document.querySelectorAll('#runs-table tbody tr').length === {args.runs}")
                    loads.append(time.perf_counter() - t0)
                out["page_load_s"] = loads
                out["rss_after_load_mb"] = rss_mb(proc.pid)

                opens = []
                for i in range(12):
                    rid = f"{i:05d}-fake"
                    page.evaluate("() => window.studio.show('runs')")
                    t0 = time.perf_counter()
                    page.click(f"a.run-link >> text={rid}")
                    page.wait_for_function(
                        "n => { const c = document.querySelector(\".chart[data-group='losses']\");"
                        " return c && c.dataset.points === String(n) && window.studio.S.open === '" + rid + "'; }",
                        arg=args.steps)
                    opens.append(time.perf_counter() - t0)
                out["open_run_s"] = opens
                out["rss_after_12_runs_mb"] = rss_mb(proc.pid)

                page.evaluate("() => window.studio.show('runs')")
                for i in range(5):
                    page.check(f"#runs-table tr[data-id='{i:05d}-fake'] input[type=checkbox]")
                t0 = time.perf_counter()
                page.click("nav button[data-view=compare]")
                page.wait_for_selector("#cmp-chart[data-series='5']")
                out["compare_5_s"] = time.perf_counter() - t0

                live = root / "00000-fake"
                page.evaluate("() => window.studio.show('runs')")
                page.click("a.run-link >> text=00000-fake")
                page.wait_for_function("n => document.querySelector(\".chart[data-group='losses']\")?.dataset.points === String(n)",
                                       arg=args.steps)
                lat = []
                for k in range(args.updates):
                    step = args.steps + 1 + k
                    t0 = time.perf_counter()
                    append_metrics(live, [step], seed=args.seed + k)
                    page.wait_for_function(
                        "s => document.querySelector(\".chart[data-group='losses']\").dataset.lastStep === String(s)",
                        arg=step, polling=10)
                    lat.append(time.perf_counter() - t0)
                    time.sleep(0.7)
                out["update_latency_s"] = lat
                out["rss_end_mb"] = rss_mb(proc.pid)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)

    def ms(xs):
        xs = sorted(xs)
        return (f"median {statistics.median(xs) * 1000:.0f} ms, min {xs[0] * 1000:.0f}, "
                f"max {xs[-1] * 1000:.0f} (n={len(xs)})")
    print(f"page load (all {args.runs} runs listed):            {ms(out['page_load_s'])}")
    print(f"open one run ({args.steps} points in every chart): {ms(out['open_run_s'])}")
    print(f"compare 5 runs (curves + grids):              {out['compare_5_s'] * 1000:.0f} ms")
    print(f"append -> chart latency:                      {ms(out['update_latency_s'])}; "
          f"p90 {sorted(out['update_latency_s'])[int(0.9 * len(out['update_latency_s']))] * 1000:.0f} ms")
    print(f"server RSS: start {out['rss_start_mb']:.0f} MB, after page load {out['rss_after_load_mb']:.0f} MB, "
          f"after opening 12 runs {out['rss_after_12_runs_mb']:.0f} MB, end {out['rss_end_mb']:.0f} MB")
    print("json: " + json.dumps({k: v if not isinstance(v, list) else [round(x, 4) for x in v] for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
