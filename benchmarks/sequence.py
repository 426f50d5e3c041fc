"""Time-series GANs on TimeGAN's sines (5 features, 24 steps): the recurrent (``seqgan``), the
convolutional (``seqgan-conv``) and the Transformer (``seqgan-conv`` with ``arch=transformer`` in
G and D) members of the sequence net family, each trained for ``--budget`` process CPU-minutes
(default 3), then TimeGAN's discriminative and predictive scores (lower is better) as mean and
std over evaluation seeds, beside the real-data floor (train sequences in place of generated ones)
and the TimeGAN paper's published figures on Sines (its own models, at its own training length).

    python -m benchmarks.sequence --threads 1 --seeds 0,1,2 --json sequence.json
    python -m benchmarks.sequence --threads 1 --budget 0.1 --n 500    # a smoke run
    python -m benchmarks.sequence --threads 1 --presets recurrent,real   # some rows only
"""

from __future__ import annotations

import time

import torch
from torch import nn

from .common import (BUDGET_NOTE, TrainedGenerator, as_generator, budget_train, cli, finish, header, load_reference,
                     make_parser, mean_std, sequence_results)

SEQUENCE_RUNS = [  # (label, preset, overrides)
    ("recurrent (GRU)", "seqgan", []),
    ("convolutional", "seqgan-conv", []),
    ("Transformer", "seqgan-conv", ["model.g.arch=transformer", "model.d.arch=transformer"]),
]

#: Yoon et al. 2019 (TimeGAN), Table 2, Sines: (discriminative, predictive) as (mean, std), the paper's
#: own training of its own models; the predictive score there is TimeGAN's "last feature" protocol on [0, 1]
#: data. The last item says whether the figures were checked against a copy of the table: TimeGAN's row is
#: quoted identically by later papers' tables (Diffusion-TS, ICLR 2024); the other rows were not found.
PUBLISHED = [
    ("TimeGAN", (0.011, 0.008), (0.093, 0.019), True),
    ("RCGAN", (0.022, 0.008), (0.097, 0.001), False),
    ("C-RNN-GAN", (0.229, 0.040), (0.127, 0.004), False),
    ("T-Forcing", (0.495, 0.001), (0.150, 0.022), False),
]
SCORES = ("discriminative_score", "predictive_score", "predictive_score_timegan")


class Replay(nn.Module):
    """The floor's "generator": the given real sequences in a seeded order, ignoring the latent."""

    def __init__(self, sequences: torch.Tensor, seed: int):
        super().__init__()
        order = torch.randperm(len(sequences), generator=torch.Generator().manual_seed(seed))
        self.sequences, self.next = sequences[order], 0

    def forward(self, z, lengths=None):  # (B, z_dim) -> (B, T, F)
        out = self.sequences[self.next:self.next + len(z)]
        if len(out) < len(z):
            raise ValueError(f"the floor has only {len(self.sequences)} real sequences; lower --n")
        self.next += len(z)
        return out


def summarise(label: str, per_seed: list[dict], **extra) -> dict:
    row = {"run": label, "per_seed": per_seed, **extra}
    for k in SCORES:
        row[k], row[k + "_std"] = mean_std([r[k] for r in per_seed])
    print(f"{label:22s} " + ", ".join(f"{k} {row[k]:.4f} ± {row[k + '_std']:.4f}" for k in SCORES), flush=True)
    return row


FLOOR = "real train sequences"


def sequence(budget: float, *, seed: int = 0, eval_seeds=(0, 1, 2), n: int = 2000,
             only: list[str] | None = None) -> list[dict]:
    picked = lambda label: not only or any(o.lower() in label.lower() for o in only)  # noqa: E731
    rows = []
    for label, preset, over in SEQUENCE_RUNS:
        if not picked(label):
            continue
        t0 = time.perf_counter()
        state = budget_train(preset, over, budget, seed)
        wall = (time.perf_counter() - t0) / 60
        g = as_generator(state)
        per_seed = [sequence_results(g, n=n, seed=s) for s in eval_seeds]
        rows.append(summarise(label, per_seed, preset=preset, overrides=" ".join(over), budget_cpu_min=budget,
                              step=state.step, seed=seed, train_wall_min=wall))
    if picked(FLOOR):  # train vs test sequences, through the same code (the model only gives the config)
        g = as_generator(budget_train(SEQUENCE_RUNS[0][1], [], 0, seed))
        real = load_reference(f"{g.cfg.data.name}:train").images.float()
        per_seed = [sequence_results(TrainedGenerator(Replay(real, s), g.cfg, args=g.args), n=n, seed=s)
                    for s in eval_seeds]
        rows.append(summarise(FLOOR, per_seed, budget_cpu_min=0, step=0, seed=seed))
    return rows


def sequence_table(rows) -> str:
    f = lambda r, k: f"{r[k]:.3f} ± {r[k + '_std']:.3f}"  # noqa: E731
    lines = ["| model | CPU-min | step | discriminative score | predictive score (next step, [-1, 1]) | "
             "predictive score (TimeGAN protocol, [0, 1]) |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['budget_cpu_min']:g} | {r['step']} | {f(r, 'discriminative_score')} | "
                     f"{f(r, 'predictive_score')} | {f(r, 'predictive_score_timegan')} |")
    lines.append("| *published (Yoon et al. 2019, Table 2, Sines; the paper's own models and training length, not "
                 "ours)* | | | | | |")
    for name, (d, ds), (p, ps), checked in PUBLISHED:
        mark = "" if checked else ", unchecked"
        lines.append(f"| {name} (paper{mark}) | – | – | {d:.3f} ± {ds:.3f} | – | {p:.3f} ± {ps:.3f} |")
    return "\n".join(lines)


def main(args) -> int:
    seed, eval_seeds = args.seeds[0], args.seeds
    runs = ", ".join(f"{lbl}: {' '.join([p, *o])}" for lbl, p, o in SEQUENCE_RUNS)
    header(args, f"sines (5 features x 24 steps) with {runs}; "
                 f"{args.budget:g} {BUDGET_NOTE} per model, training seed {seed}; scores on {args.n} generated vs the "
                 f"first {args.n} test sequences, mean ± std over evaluation seeds {','.join(map(str, eval_seeds))}; "
                 f"floor: {args.n} train sequences in place of generated ones", seeds=args.seeds)
    only = args.presets.split(",") if args.presets else None
    rows = sequence(args.budget, seed=seed, eval_seeds=eval_seeds, n=args.n, only=only)
    return finish(args, rows, sequence_table(rows), published=[
        {"model": m, "discriminative_score": d, "predictive_score_timegan": p, "checked": c}
        for m, d, p, c in PUBLISHED])


parser = make_parser("sequence", __doc__.split("\n\n")[0],
                     seeds="comma-separated seeds: the first trains every model, all are evaluation seeds "
                           "(default 0,1,2)",
                     presets="comma-separated parts of row labels: only those rows (recurrent, convolutional, "
                             "Transformer, real; default: all)")
parser.add_argument("--budget", type=float, default=3.0,
                    help="process CPU-minutes of training per model (evaluation excluded; default 3)")
parser.add_argument("--n", type=int, default=2000, help="generated and test sequences per score (default 2000)")

if __name__ == "__main__":
    cli(parser, main)
