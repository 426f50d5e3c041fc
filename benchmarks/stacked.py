"""Stacked Fashion-MNIST mode coverage (docs/protocols.md section 2): three Fashion-MNIST images as the
channels (10 classes each: 1000 modes); per preset, after a fixed CPU budget, the modes covered
(of 1000) and the KL to uniform, read by the fmnist classifier per channel.

    python -m benchmarks.stacked --budgets 2 --threads 1 --seeds 0 --json stacked.json
"""

from __future__ import annotations

from .common import BUDGET_NOTE, as_generator, budget_train, cli, finish, header, make_parser, stacked_modes

# extra overrides per preset
STACKED_PRESETS = {
    "dcgan": [], "wgan-gp": [], "sngan": ["model.g.width=64", "model.d.width=64"],
    "pacgan": [],
}


def stacked(presets, budget: float, seed: int = 0, n: int = 26000) -> list[dict]:
    rows = []
    for p in presets:
        state = budget_train(p, ["data.name=stacked-fmnist", *STACKED_PRESETS.get(p, [])], budget, seed)
        g = as_generator(state)
        r = stacked_modes(lambda k, s: g.sample(k, seed=s), n=n, seed=seed)
        row = {"preset": p, "budget_cpu_min": budget, "step": state.step, "seed": seed,
               **{k: float(v) for k, v in r.items() if isinstance(v, (int, float))}}
        rows.append(row)
        print(f"stacked {p:8s} {budget:g} CPU-min (step {state.step}): " +
              ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("preset", "budget_cpu_min", "step", "seed")),
              flush=True)
    return rows


def stacked_table(rows) -> str:
    lines = ["| preset | CPU-min | step | modes (of 1000) | KL to uniform |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['budget_cpu_min']:g} | {r['step']} | {r.get('modes', float('nan')):.0f} | "
                     f"{r.get('kl', float('nan')):.3f} |")
    return "\n".join(lines)


def main(args) -> int:
    seed = args.seeds[0]
    budget = float(args.budgets or 3)
    presets = (args.presets or "dcgan,wgan-gp,sngan,pacgan").split(",")
    header(args, f"stacked-fmnist, presets {presets} (+ {STACKED_PRESETS}), {budget:g} {BUDGET_NOTE}, "
                 f"26000 samples from G (EMA when kept), fmnist classifier per channel, seed {seed}", seeds=[seed])
    rows = stacked(presets, budget, seed)
    return finish(args, rows, stacked_table(rows))


parser = make_parser("stacked", __doc__.split("\n\n")[0],
                     seeds="comma-separated seeds; the first is used (default 0,1,2)",
                     presets="comma-separated presets (default dcgan,wgan-gp,sngan,pacgan)",
                     budgets="CPU-minutes of training per preset (default 3)")

if __name__ == "__main__":
    cli(parser, main)
