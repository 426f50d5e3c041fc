"""Class-conditional presets on Fashion-MNIST after a fixed CPU budget: FID / KID / P / R / D / C,
the fmnist classifier's accuracy on class-conditional samples, intra-class FID; with
``--augment``, a classifier trained on 10 % of the train split with and without synthetic images
from the best preset, and on synthetic images only (accuracy on the full test split).

    python -m benchmarks.conditional --presets projection-dcgan,acgan --budgets 3 --augment --threads 1 --seeds 0,1,2
"""

from __future__ import annotations

import time

import torch

from .common import (BUDGET_NOTE, FmnistNet, as_generator, budget_train, cli, conditional_results,
                     evaluate_generator, finish, get_feature_extractor, header, load_split, make_parser, mean_std,
                     seeded_sampler)

# extra overrides per preset
COND_PRESETS = {"projection-dcgan": [], "acgan": [], "cgan": [],
                "projection": ["model.g.width=64", "model.d.width=64"],
                "biggan": ["model.g.width=32", "model.d.width=32"]}


def conditional(presets, budget: float, seed: int = 0, n: int = 10000) -> tuple[list[dict], dict]:
    ext = get_feature_extractor("fmnist")
    rows, states = [], {}
    for p in presets:
        state = budget_train(p, ["data.name=fashion-mnist", *COND_PRESETS.get(p, [])], budget, seed)
        g = as_generator(state)
        sample = seeded_sampler(g.net, state.cfg, state.device, state.data.num_classes)
        r = evaluate_generator(sample, metrics="fid,kid,pr,dc,is", n=n, ref="fashion-mnist:test", extractor=ext,
                               seed=seed, progress=False)["results"]
        c = conditional_results(g, n=n, ref="fashion-mnist:test", extractor=ext, seed=seed)
        row = {"preset": p, "budget_cpu_min": budget, "step": state.step, "seed": seed, **r,
               "acc": c["acc"], "ifid": c["ifid"]}
        rows.append(row)
        states[p] = state
        print(f"conditional {p:16s} {budget:g} CPU-min (step {state.step}): FID {r['fid']:.2f}, "
              f"P {r['precision']:.3f}, R {r['recall']:.3f}, acc {100 * c['acc']:.1f} %, intra-FID {c['ifid']:.2f}",
              flush=True)
    return rows, states


def _train_classifier(x: torch.Tensor, y: torch.Tensor, *, seed: int, epochs: int, batch: int = 128):
    """The fmnist feature network's architecture trained from scratch on (x uint8, y)."""
    torch.manual_seed(seed)
    net = FmnistNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    xf = x.float().div(127.5).sub(1)
    for _ in range(epochs):
        perm = torch.randperm(len(xf), generator=g)
        for i in range(0, len(xf), batch):
            idx = perm[i:i + batch]
            loss = torch.nn.functional.cross_entropy(net(xf[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def _accuracy(net, x: torch.Tensor, y: torch.Tensor) -> float:
    xf = x.float().div(127.5).sub(1)
    pred = torch.cat([net(xf[i:i + 1000]).argmax(1) for i in range(0, len(xf), 1000)])
    return float((pred == y).float().mean())


def augment_study(g, seeds=(0, 1, 2), fraction: float = 0.1, synthetic_per_class: int = 600,
                  epochs: int = 8) -> list[dict]:
    """Accuracy on the full test split of a classifier trained on ``fraction`` of the train split
    (stratified), with and without ``synthetic_per_class`` images per class from ``g``, and on
    the synthetic images alone (GAN-train)."""
    xtr, ytr = load_split("fashion-mnist", "train")
    xte, yte = load_split("fashion-mnist", "test")
    rows = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(1000 + seed)
        keep = torch.cat([torch.nonzero(ytr == k).flatten()[torch.randperm(int((ytr == k).sum()), generator=gen)
                          [:int(fraction * int((ytr == k).sum()))]] for k in range(10)])
        xr, yr = xtr[keep], ytr[keep]
        ys = torch.arange(10).repeat_interleave(synthetic_per_class)
        xs = g.sample(len(ys), seed=seed, labels=ys).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        for setting, (x, y) in {"real 10 %": (xr, yr), "real 10 % + synthetic": (torch.cat([xr, xs]), torch.cat([yr, ys])),
                                "synthetic only": (xs, ys)}.items():
            t0 = time.perf_counter()
            net = _train_classifier(x, y, seed=seed, epochs=epochs)
            acc = _accuracy(net, xte, yte)
            rows.append({"setting": setting, "seed": seed, "train_images": len(x), "test_acc": acc,
                         "seconds": time.perf_counter() - t0})
            print(f"augment {setting:24s} seed {seed}: {len(x)} train images, test accuracy {100 * acc:.2f} %",
                  flush=True)
    return rows


def conditional_table(rows) -> str:
    lines = ["| preset | CPU-min | step | FID | KID | precision | recall | density | coverage | class accuracy | intra-class FID |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['budget_cpu_min']:g} | {r['step']} | {r['fid']:.2f} | {r['kid_mean']:.4f} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} | {r['density']:.3f} | {r['coverage']:.3f} | "
                     f"{100 * r['acc']:.1f} % | {r['ifid']:.2f} |")
    return "\n".join(lines)


def augment_table(rows) -> str:
    lines = ["| training set | images | test accuracy (mean ± std over seeds) | seeds |", "| --- | --- | --- | --- |"]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        rs = [r for r in rows if r["setting"] == setting]
        m, s = mean_std([100 * r["test_acc"] for r in rs])
        lines.append(f"| {setting} | {rs[0]['train_images']} | {m:.2f} ± {s:.2f} % | "
                     f"{','.join(str(r['seed']) for r in rs)} |")
    return "\n".join(lines)


def main(args) -> int:
    seed = args.seeds[0]
    budget = float(args.budgets or 3)
    presets = (args.presets or "projection-dcgan,acgan").split(",")
    header(args, f"fashion-mnist, presets {presets} (+ {COND_PRESETS}), {budget:g} {BUDGET_NOTE}, 10000 samples "
                 f"(uniform labels) vs 10000 test images, features fmnist; accuracy and intra-class FID on 1000 "
                 f"samples per class; seed {seed}" + ("; augmentation study over all seeds" if args.augment else ""),
           seeds=args.seeds if args.augment else [seed])
    rows, states = conditional(presets, budget, seed)
    table, extra = conditional_table(rows), {}
    if args.augment:
        best = min(rows, key=lambda r: r["fid"])["preset"]
        print(f"augmentation study with synthetic images from {best}")
        aug = augment_study(as_generator(states[best]), seeds=args.seeds)
        extra["augment"] = {"generator": best, "rows": aug}
        table += "\n\n" + augment_table(aug)
    return finish(args, rows, table, **extra)


parser = make_parser("conditional", __doc__.split("\n\n")[0],
                     seeds="comma-separated seeds: the first trains the presets, all of them seed the "
                           "augmentation study (default 0,1,2)",
                     presets="comma-separated presets (default projection-dcgan,acgan)",
                     budgets="CPU-minutes of training per preset (default 3)",
                     augment="also the data-augmentation study with the best preset's samples")

if __name__ == "__main__":
    cli(parser, main)
