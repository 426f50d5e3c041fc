"""Mode coverage on the 2-D Gaussian mixtures (docs/protocols.md section 1): modes, % high-quality
samples and reverse KL per preset, dataset and seed.

    python -m benchmarks.toy --threads 1 --seeds 0,1,2
"""

from __future__ import annotations

import time

from .common import MIXTURES, cli, finish, header, load, make_parser, mean_std, mode_metrics, resolve, train_run

# Settings for the 2-D mixtures, on top of each preset: MLP nets sized for 2-D data, large
# batches, and an EMA of G for the final samples. The presets' published settings (model.size
# paper: wgan-gp's 5 critic steps), not the image-sized CPU ones, whatever the machine.
TOY_COMMON = [
    "model.size=paper", "model.arch=mlp", "model.z_dim=8", "model.g.hidden=64", "model.d.hidden=128",
    "train.batch_size=256", "train.ema=0.999", "optim.schedule=linear", "optim.lr_g=1e-3", "optim.lr_d=1e-3",
    "train.log_every=500", "train.sample_every=0", "train.ckpt_every=0", "train.keep_ckpts=1",
    "train.progress=false",
]
TOY_PRESET = {
    "vanilla": ["train.steps=8000"],
    "wgan-gp": ["train.steps=4000", "optim.betas=[0.5,0.9]"],
    "hinge": ["train.steps=10000", "model.d.sn=true", "train.n_critic=2"],
    "pacgan": ["train.steps=8000"],  # vanilla's budget with D judging packs of 2
    "sngan": ["train.steps=4000", "model.d.sn=true", "optim.betas=[0.0,0.9]"],  # n_critic 5 from the preset
}
TOY_EVAL_SAMPLES = 2500


def toy(presets, datasets, seeds, steps=None, out="runs/bench", extra=()) -> list[dict]:
    rows = []
    for ds in datasets:
        mixture = MIXTURES[ds]()
        for preset in presets:
            overrides = TOY_COMMON + TOY_PRESET.get(preset, []) + [f"data.name={ds}", f"out={out}"] + list(extra)
            if steps:
                overrides.append(f"train.steps={steps}")
            for seed in seeds:
                cfg = resolve(preset, overrides=overrides + [f"seed={seed}"])
                t0 = time.perf_counter()
                cpu0 = time.process_time()
                run = train_run(cfg)
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                g = load(run)
                x = g.sample(TOY_EVAL_SAMPLES, seed=10_000 + seed)
                m = mode_metrics(x, mixture.means, mixture.std)
                row = {"dataset": ds, "preset": preset, "seed": seed, "steps": cfg.train.steps,
                       "modes": int(m["modes"]), "K": len(mixture.means), "hq": 100 * float(m["hq_fraction"]),
                       "reverse_kl": float(m["reverse_kl"]), "wall_s": wall, "cpu_s": cpu, "run": str(run)}
                rows.append(row)
                print(f"{ds:7s} {preset:8s} seed {seed}: modes {row['modes']}/{row['K']}, HQ {row['hq']:.1f} %, "
                      f"reverse KL {row['reverse_kl']:.3f}, {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    return rows


def toy_table(rows) -> str:
    lines = ["| dataset | preset | steps | modes | % HQ | reverse KL | wall s / run | seeds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    keys = sorted({(r["dataset"], r["preset"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for ds, preset in keys:
        rs = [r for r in rows if r["dataset"] == ds and r["preset"] == preset]
        m, h, k, w = (mean_std([r[f] for r in rs]) for f in ("modes", "hq", "reverse_kl", "wall_s"))
        lines.append(f"| {ds} | {preset} | {rs[0]['steps']} | {m[0]:.2f} ± {m[1]:.2f} / {rs[0]['K']} | "
                     f"{h[0]:.1f} ± {h[1]:.1f} | {k[0]:.3f} ± {k[1]:.3f} | {w[0]:.0f} | "
                     f"{','.join(str(r['seed']) for r in rs)} |")
    return "\n".join(lines)


def main(args) -> int:
    presets = (args.presets or "vanilla,wgan-gp,hinge").split(",")
    datasets = (args.datasets or "ring8,grid25").split(",")
    header(args, f"{' '.join(TOY_COMMON)}; per preset: {TOY_PRESET}; seeds {args.seeds}; "
                 f"{TOY_EVAL_SAMPLES} samples from G_ema")
    rows = toy(presets, datasets, args.seeds, args.steps, args.out, list(args.set or []))
    return finish(args, rows, toy_table(rows))


parser = make_parser("toy", __doc__.split("\n\n")[0], presets="comma-separated presets (default vanilla,wgan-gp,hinge)",
                     datasets="comma-separated toy datasets (default ring8,grid25)",
                     steps="override every preset's train.steps", set=True, out=True)

if __name__ == "__main__":
    cli(parser, main)
