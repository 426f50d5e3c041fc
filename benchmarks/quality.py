"""Fashion-MNIST quality at fixed CPU budgets (docs/protocols.md section 3): each preset trains until
its process CPU time passes each budget and is evaluated there (FID, KID, P/R, D/C, IS; 10k
generated vs the 10k test images), plus the real-data floor row.

    python -m benchmarks.quality --presets dcgan --threads 1 --seeds 0 --json quality-dcgan.json
"""

from __future__ import annotations

import time

from .common import (Reporter, build_state, cli, evaluate_generator, finish, get_feature_extractor, header,
                     machine_speed, make_parser, resolve, seeded_sampler, train_for_cpu)
from .floor import QUALITY_METRICS, floor, quality_table


def quality(presets, budgets_min=(2, 5, 10, 20), n: int = 10000, seed: int = 0,
            extra: list[str] | None = None) -> list[dict]:
    """Train each preset on Fashion-MNIST and evaluate it when its process CPU time passes each
    budget (evaluation time is not counted). 10k generated vs the 10k test images."""
    ext = get_feature_extractor("fmnist")
    rows = []
    for preset in presets:
        cfg = resolve(preset, overrides=["data.name=fashion-mnist", f"seed={seed}", "train.progress=false",
                                         "train.steps=100000000"] + list(extra or []))
        speed_before = machine_speed()
        state = build_state(cfg)
        rep = Reporter()
        cpu = 0.0
        preset_rows = []
        t_wall = time.perf_counter()
        for budget in sorted(budgets_min):
            cpu = train_for_cpu(state, rep, budget * 60, spent=cpu)
            net = state.sampler_net
            sample = seeded_sampler(net, state.cfg, state.device, state.data.num_classes)
            net.eval()
            out = evaluate_generator(sample, metrics=QUALITY_METRICS, n=n, ref="fashion-mnist:test",
                                     extractor=ext, seed=seed, progress=False)
            net.train()
            r = out["results"]
            t = state.cfg.train
            row = {"preset": preset, "size": state.cfg.model.size, "amp": t.amp, "channels_last": t.channels_last,
                   "budget_cpu_min": budget, "step": state.step, "seed": seed,
                   "wall_min": (time.perf_counter() - t_wall) / 60, **r}
            preset_rows.append(row)
            print(f"{preset:8s} ({state.cfg.model.size} size, amp {t.amp}, channels_last {t.channels_last}) "
                  f"{budget:>3g} CPU-min (step {state.step}): FID {r['fid']:.2f}, "
                  f"KID {r['kid_mean']:.4f}, P {r['precision']:.3f}, R {r['recall']:.3f}, "
                  f"D {r['density']:.3f}, C {r['coverage']:.3f}, IS {r['is_mean']:.2f}", flush=True)
        speed_after = machine_speed()
        for row in preset_rows:
            row["machine_speed"] = [speed_before, speed_after]
        rows += preset_rows
        print(f"{preset}: machine speed before / after, fp32 reference steps per CPU-second: {speed_before:.1f} / "
              f"{speed_after:.1f}", flush=True)
    return rows


def main(args) -> int:
    presets = (args.presets or "dcgan,wgan-gp,hinge").split(",")
    budgets = [float(b) if "." in b else int(b) for b in (args.budgets or "2,5,10,20").split(",")]
    seed = args.seeds[0]
    header(args, f"fashion-mnist train, presets' defaults (model.size=auto: cpu without CUDA), budgets {budgets} process CPU-minutes "
                 f"(evaluation excluded), 10000 samples vs 10000 test images, features fmnist, seed {seed}", seeds=[seed])
    rows = quality(presets, budgets, seed=seed, extra=list(args.set or []))
    fl = floor(seed=seed)
    return finish(args, {"rows": rows, "floor": fl}, quality_table(rows, fl))


parser = make_parser("quality", __doc__.split("\n\n")[0],
                     seeds="comma-separated seeds; the first is used (default 0,1,2)",
                     presets="comma-separated presets (default dcgan,wgan-gp,hinge)",
                     budgets="comma-separated CPU-minute budgets (default 2,5,10,20)", set=True)

if __name__ == "__main__":
    cli(parser, main)
