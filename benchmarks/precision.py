"""Training speed per preset in fp32 and on the CPU's bf16 path: steps per CPU-second of each
preset's training step (its size for this device, Fashion-MNIST, the preset's batch) with
``train.amp`` / ``train.channels_last`` set to off / off, off / on, bf16 / off and bf16 / on.

    python -m benchmarks.precision --presets dcgan,sngan --threads 1

The four states of a preset are built once and warmed up, then trained in blocks of ``--block``
CPU-seconds taking turns (the order reversed every round, ``--repeats`` rounds), so that a host
whose speed drifts during the run (shared machines do) slows all four alike; each cell is the
median over the rounds, and the last column the ratio of bf16 + channels_last to fp32. On a CPU
without bf16 instructions (AMX or AVX512-BF16) ganforge refuses bf16 with a warning and trains in
fp32, which the header says: the bf16 columns then measure fp32.
"""

from __future__ import annotations

import statistics

from .common import (Reporter, build_state, cli, cpu_native_bf16, finish, header, make_parser, resolve,
                     train_for_cpu, train_step)

CONFIGS = (("fp32", "off", "off"), ("fp32 + NHWC", "off", "on"), ("bf16", "bf16", "off"),
           ("bf16 + NHWC", "bf16", "on"))


def steps_per_cpu_second(state, rep, seconds: float) -> float:
    before = state.step
    spent = train_for_cpu(state, rep, seconds)
    return (state.step - before) / spent


def precision_speed(presets, repeats: int = 3, block_s: float = 3.0, seed: int = 0,
                    extra: list[str] | None = None) -> list[dict]:
    """One row per preset: median steps per CPU-second of each configuration, and the ratio."""
    rows = []
    for preset in presets:
        states = {}
        for name, amp, layout in CONFIGS:
            cfg = resolve(preset, overrides=["data.name=fashion-mnist", f"seed={seed}", "train.progress=false",
                                             "train.steps=100000000", f"train.amp={amp}",
                                             f"train.channels_last={layout}", *(extra or [])])
            state, rep = build_state(cfg), Reporter()
            for _ in range(3):  # warm-up: first-call allocations and oneDNN's kernel choice
                train_step(state, rep)
            states[name] = (state, rep)
        rates: dict[str, list[float]] = {name: [] for name in states}
        for r in range(repeats):
            for name in (list(states) if r % 2 == 0 else list(reversed(states))):
                rates[name].append(steps_per_cpu_second(*states[name], block_s))
        med = {name: statistics.median(v) for name, v in rates.items()}
        row = {"preset": preset, "size": states["fp32"][0].cfg.model.size, "rates": rates, **med,
               "ratio": med[CONFIGS[-1][0]] / med["fp32"]}
        rows.append(row)
        print(f"{preset}: steps per CPU-second " + ", ".join(f"{n} {med[n]:.2f}" for n in med)
              + f"; bf16 + NHWC / fp32 = {row['ratio']:.2f}", flush=True)
    return rows


def table(rows) -> str:
    names = [n for n, _, _ in CONFIGS]
    lines = ["| preset | size | " + " | ".join(names) + " | bf16 + NHWC / fp32 |",
             "| --- | --- | " + " | ".join("---:" for _ in names) + " | ---: |"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['size']} | " + " | ".join(f"{r[n]:.2f}" for n in names)
                     + f" | {r['ratio']:.2f} |")
    return "\n".join(lines)


def main(args) -> int:
    presets = (args.presets or "dcgan,sngan").split(",")
    seed = args.seeds[0]
    native = "has" if cpu_native_bf16() else "has NO (the bf16 columns run in fp32)"
    header(args, f"fashion-mnist, each preset's size for this device, steps per CPU-second in {args.repeats} "
                 f"rounds of {args.block:g} CPU-s blocks per configuration, median; this CPU {native} bf16 "
                 f"instructions; seed {seed}", seeds=[seed])
    rows = precision_speed(presets, repeats=args.repeats, block_s=args.block, seed=seed, extra=list(args.set or []))
    return finish(args, rows, table(rows))


parser = make_parser("precision", __doc__.split("\n\n")[0],
                     seeds="comma-separated seeds; the first is used (default 0,1,2)",
                     presets="comma-separated presets (default dcgan,sngan)", set=True)
parser.add_argument("--repeats", type=int, default=3, help="rounds of blocks per configuration (default 3)")
parser.add_argument("--block", type=float, default=3.0, help="CPU-seconds per block (default 3)")

if __name__ == "__main__":
    cli(parser, main)
