"""Semi-supervised GAN on Fashion-MNIST (Salimans et al. 2016, sec. 5): the test accuracy of the `sgan`
preset's D against the same D net trained on the labelled images alone, at each labels-per-class count.

    python -m benchmarks.semi --threads 1 --seeds 0,1,2 --labels 10,100 --budget 5 --json semi.json

Seeds and label counts can run in separate processes (``--seeds 0 --labels 10 --json a.json`` ...) and be
put in one table with ``--merge a.json,b.json,...`` (no training; the files must share a commit).

Both arms of a seed start from the same resolved config (``seed`` picks the labelled subset, the
initial weights and the batch order): the GAN trains with ``train_step`` (supervised cross-entropy
on the labelled images + the unsupervised real/fake term for D, feature matching for G); the
baseline is the same D net with the same initial weights, optimizer (settings and learning-rate
schedule) and labelled batches of the same size, trained by the supervised cross-entropy only. Each
arm trains for ``--budget`` process CPU-minutes (training only); the test accuracy (metric
``test_acc``, all 10,000 test images, dropout off) is measured at a third, two thirds and all of
the budget, and the last one is the result.
"""

from __future__ import annotations

import time

from .common import (BUDGET_NOTE, Reporter, as_generator, build_state, cli, evaluate, finish, header, make_parser,
                     mean_std, resolve, run_info, ssl_supervised, train_for_cpu, UserError)

PRESET = "sgan"
CHECKPOINTS = (1 / 3, 2 / 3, 1.0)  # fractions of the budget where the test accuracy is measured
TEST_N = 10000  # Fashion-MNIST's whole test split


def semi_config(labels_per_class: int, seed: int, extra=()):
    """The `sgan` preset on semi:fashion-mnist with ``labels_per_class`` labels per class."""
    return resolve(PRESET, overrides=[f"data.labels_per_class={labels_per_class}", f"seed={seed}",
                                      "train.progress=false", "train.steps=100000000", *extra])


def test_accuracy(state, n: int = TEST_N) -> float:
    """The registered ``test_acc`` of the state's D on the first ``n`` test images."""
    model = as_generator(state)
    model.discriminator = state.D  # the product of a semi-supervised run; classify() switches dropout off
    out = evaluate(model, metrics="test_acc", n=n, progress=False)["results"]["test_acc"]
    state.G.train()  # as_generator put the sampling net in eval mode
    return out


def supervised_step(state) -> float:
    """One update of ``state.D`` by the cross-entropy of a labelled batch (the GAN's D step without the
    unsupervised term and without G); returns the loss."""
    x, y = state.data.labelled.next(state.cfg.train.batch_size)  # the GAN's labelled stream, same subset
    x, y = x.to(state.device), y.to(state.device)
    logits, _ = state.D(state.objective.aug(x, state.d_steps))  # (B, K)
    loss = ssl_supervised(logits=logits, labels=y)
    state.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    state.opt_d.step()
    state.objective.after_d_step(state.D)
    state.sched_d.step()
    state.d_steps += 1
    state.step += 1
    return loss.item()


def train_supervised_for_cpu(state, seconds: float, spent: float = 0.0, losses: list | None = None) -> float:
    """Like ``train_for_cpu`` for the baseline: supervised steps until ``seconds`` of process CPU time."""
    while spent < seconds:
        c0 = time.process_time()
        loss = supervised_step(state)
        spent += time.process_time() - c0
        if losses is not None:
            losses.append(loss)
    return spent


def run_arm(arm: str, labels_per_class: int, seed: int, budget_min: float, extra=()) -> dict:
    """Train one arm ("sgan" or "supervised") for the budget; its test accuracy at each checkpoint."""
    state = build_state(semi_config(labels_per_class, seed, extra))
    rep, cpu, accs, losses, t0 = Reporter(), 0.0, [], [], time.perf_counter()
    for frac in CHECKPOINTS:
        if arm == PRESET:
            cpu = train_for_cpu(state, rep, frac * budget_min * 60, spent=cpu)
        else:
            cpu = train_supervised_for_cpu(state, frac * budget_min * 60, spent=cpu, losses=losses)
        accs.append(test_accuracy(state))
    row = {"arm": arm, "labels_per_class": labels_per_class, "labels": labels_per_class * state.data.num_classes,
           "seed": seed, "steps": state.step, "d_steps": state.d_steps, "cpu_s": cpu,
           "wall_min": (time.perf_counter() - t0) / 60, "test_acc": accs[-1],
           "test_acc_at": dict(zip([f"{f:.2f}" for f in CHECKPOINTS], accs))}
    if losses:
        tail = losses[-100:]
        row["train_loss_last100"] = sum(tail) / len(tail)
    curve = " -> ".join(f"{a:.4f}" for a in accs)
    loss = f", labelled CE (last 100 steps) {row['train_loss_last100']:.4f}" if losses else ""
    print(f"{arm:10s} {row['labels']:>5d} labels seed {seed}: test_acc {accs[-1]:.4f} after {state.step} steps "
          f"({cpu:.0f} CPU-s, {row['wall_min']:.1f} wall-min); at 1/3, 2/3, 1 of the budget: {curve}{loss}",
          flush=True)
    return row


def semi(labels=(10, 100), seeds=(0, 1, 2), budget_min: float = 5.0, extra=()) -> list[dict]:
    rows = []
    for lpc in labels:
        for seed in seeds:
            for arm in (PRESET, "supervised"):
                rows.append(run_arm(arm, lpc, seed, budget_min, extra))
    return rows


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def semi_table(rows, commit: str, cmd: str | list[str]) -> str:
    """Per label count: mean ± std over seeds of each arm, the GAN's gain, every seed's pair."""
    cmds = ", ".join(f"`{c}`" for c in ([cmd] if isinstance(cmd, str) else cmd))
    out = [f"Commit `{commit}`, {cmds}.", "",
           "| labels (per class) | SGAN test acc % | supervised test acc % | SGAN − supervised (points) "
           "| per seed (seed: SGAN / supervised) | seeds |",
           "| --- | --- | --- | --- | --- | --- |"]
    for lpc in dict.fromkeys(r["labels_per_class"] for r in rows):
        gan = {r["seed"]: r for r in rows if r["labels_per_class"] == lpc and r["arm"] == PRESET}
        sup = {r["seed"]: r for r in rows if r["labels_per_class"] == lpc and r["arm"] == "supervised"}
        seeds = [s for s in gan if s in sup]
        if not seeds:
            continue
        g, s = mean_std([gan[k]["test_acc"] for k in seeds]), mean_std([sup[k]["test_acc"] for k in seeds])
        d = mean_std([gan[k]["test_acc"] - sup[k]["test_acc"] for k in seeds])
        per = "; ".join(f"{k}: {_pct(gan[k]['test_acc'])} / {_pct(sup[k]['test_acc'])}" for k in seeds)
        n = gan[seeds[0]]["labels"]
        out.append(f"| {n} ({lpc}) | {_pct(g[0])} ± {_pct(g[1])} | {_pct(s[0])} ± {_pct(s[1])} "
                   f"| {100 * d[0]:+.2f} ± {100 * d[1]:.2f} | {per} | {','.join(map(str, seeds))} |")
    return "\n".join(out)


def merge(files: list[str]) -> tuple[list[dict], str]:
    """The rows of several ``--json`` files of this benchmark and their table (one commit required)."""
    import json
    from pathlib import Path
    docs = [json.loads(Path(f).read_text()) for f in files]
    commits = {d["commit"] for d in docs}
    if len(commits) != 1:
        raise UserError(f"the files were written at different commits: {sorted(commits)}")
    rows = [r for d in docs for r in d["rows"]]
    rows.sort(key=lambda r: (r["labels_per_class"], r["seed"], r["arm"] != PRESET))
    return rows, semi_table(rows, commits.pop(), [d["command"] for d in docs])


def main(args) -> int:
    if args.merge:
        rows, table = merge(args.merge.split(","))
        print(table)
        return 0
    labels = [int(v) for v in args.labels.split(",")]
    header(args, f"{PRESET} preset on semi:fashion-mnist, labels per class {labels}; arms: SGAN (train_step) and "
                 f"the same D net trained on the labelled images only (cross-entropy, same init, optimizer and "
                 f"batch size); {args.budget:g} {BUDGET_NOTE} per arm; test_acc on the {TEST_N} test images at "
                 f"1/3, 2/3 and all of the budget (the last is the result)")
    rows = semi(labels, args.seeds, args.budget, list(args.set or []))
    return finish(args, rows, semi_table(rows, run_info()["commit"], run_info()["command"]))


parser = make_parser("semi", __doc__.split("\n\n")[0], set=True)
parser.add_argument("--budget", type=float, default=5.0,
                    help="process CPU-minutes of training per run, each arm (default 5)")
parser.add_argument("--labels", default="10,100",
                    help="comma-separated labels per class (default 10,100: 100 and 1,000 labels in all)")
parser.add_argument("--merge", default=None, metavar="A.json,B.json",
                    help="only print one table from earlier --json files of this benchmark (e.g. one per seed)")

if __name__ == "__main__":
    cli(parser, main)
