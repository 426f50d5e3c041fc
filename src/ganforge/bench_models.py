"""Benchmarks of the modern, conditional and image-to-image models (not tests).

``ganforge bench <which>`` with which in:

* ``stacked``: stacked Fashion-MNIST mode coverage (modes of 1000, KL to uniform) per preset
  after a fixed CPU budget (PROTOCOLS.md section 2);
* ``conditional``: class-conditional presets on Fashion-MNIST: FID / KID / P / R / D / C, the
  ``fmnist`` classifier's accuracy on class-conditional samples, intra-class FID;
* ``i2i``: super-resolution x2 / x4 (pixel loss alone, then rising adversarial weight: PSNR /
  SSIM against bicubic and FID), pix2pix edges -> item and deblurring (L1, PSNR, SSIM, FID),
  CycleGAN sneakers <-> ankle boots (FID of translations, cycle error);
* ``augment``: a classifier trained on 10 % of Fashion-MNIST train with and without synthetic
  images from a conditional run, and on synthetic images only, accuracy on the full test split.

Every run trains until its process CPU time passes the budget (evaluation excluded), as the
quality benchmark does, and prints the command, settings and seeds beside the numbers.
"""

from __future__ import annotations

import time

import torch

BUDGET_NOTE = "process CPU-minutes of training (evaluation excluded)"


def budget_train(preset: str, overrides: list[str], cpu_minutes: float, seed: int = 0):
    """Build a run's state and train it until ``cpu_minutes`` of process CPU time have passed."""
    from .bench import train_for_cpu
    from .config import resolve
    from .train import Reporter, build_state
    cfg = resolve(preset, overrides=[f"seed={seed}", "train.progress=false", "train.steps=100000000",
                                     *overrides])
    state = build_state(cfg)
    train_for_cpu(state, Reporter(), cpu_minutes * 60)
    return state


def as_generator(state):
    """The state's sampling generator (EMA when kept) as a :class:`ganforge.api.Generator`."""
    from .api import Generator
    net = state.sampler_net
    net.eval()
    g = Generator(net, state.cfg, step=state.step, checkpoint=None, ema=state.G_ema is not None,
                  device=state.device, num_classes=state.data.num_classes, data_kind=state.data.kind)
    g.args = dict(state.g_args)
    return g


# -- stacked Fashion-MNIST ---------------------------------------------------------------------------

STACKED_PRESETS = {
    "dcgan": [], "wgan-gp": [], "sngan": ["model.g.width=64", "model.d.width=64"],
    "pacgan": [],
}


def stacked(presets, budget: float, seed: int = 0, n: int = 26000) -> list[dict]:
    from .data.stacked import stacked_modes
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


# -- class-conditional Fashion-MNIST ------------------------------------------------------------------

COND_PRESETS = {"projection-dcgan": [], "acgan": [], "cgan": [],
                "projection": ["model.g.width=64", "model.d.width=64"],
                "biggan": ["model.g.width=32", "model.d.width=32"]}


def conditional(presets, budget: float, seed: int = 0, n: int = 10000) -> tuple[list[dict], dict]:
    from .evaluate import conditional_results, evaluate_generator
    from .features import get_feature_extractor
    from .train import seeded_sampler
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


# -- image-to-image --------------------------------------------------------------------------------------

I2I_RUNS = [  # (label, preset, overrides)
    ("SR x2, pixel loss", "srgan", ["data.name=fmnist-sr2", "loss.adv_weight=0", "loss.terms.feature=0"]),
    ("SR x2, adv 1e-3", "srgan", ["data.name=fmnist-sr2"]),
    ("SR x4, pixel loss", "srgan", ["data.name=fmnist-sr4", "loss.adv_weight=0", "loss.terms.feature=0"]),
    ("SR x4, adv 1e-3", "srgan", ["data.name=fmnist-sr4"]),
    ("SR x4, adv 1e-2", "srgan", ["data.name=fmnist-sr4", "loss.adv_weight=1e-2"]),
    ("SR x2, residual, pixel loss", "srgan", ["data.name=fmnist-sr2", "model.g.residual=true", "loss.adv_weight=0",
                                              "loss.terms.feature=0"]),
    ("SR x4, residual, pixel loss", "srgan", ["data.name=fmnist-sr4", "model.g.residual=true", "loss.adv_weight=0",
                                              "loss.terms.feature=0"]),
    ("SR x4, residual, adv 1e-2", "srgan", ["data.name=fmnist-sr4", "model.g.residual=true", "loss.adv_weight=1e-2"]),
    ("SR x4, residual, adv 1e-1", "srgan", ["data.name=fmnist-sr4", "model.g.residual=true", "loss.adv_weight=1e-1"]),
    ("pix2pix edges", "pix2pix", []),
    ("deblur", "deblur", []),
    ("CycleGAN shoes", "cyclegan", []),
]
I2I_SMALL = ["model.g.width=32", "model.d.width=32"]


def i2i(budget: float, seed: int = 0, n: int = 2000, only: list[str] | None = None) -> list[dict]:
    from .data.pairs import load_config_pairs
    from .evaluate import translation_results
    from .features import get_feature_extractor
    ext = get_feature_extractor("fmnist")
    rows = []
    for label, preset, over in I2I_RUNS:
        if only and not any(o in label for o in only):
            continue
        state = budget_train(preset, [*I2I_SMALL, *over], budget, seed)
        g = as_generator(state)
        targets, inputs = load_config_pairs(state.cfg, "test", limit=n)
        sr = tuple(inputs.shape[2:]) != tuple(targets.shape[2:])
        r = translation_results(g, inputs, targets, extractor=ext, baseline=sr)
        if sr:  # the bicubic baseline's FID beside the model's
            from .metrics import METRICS
            from .metrics.image import bicubic_upscale
            up = bicubic_upscale(inputs.float().div(127.5).sub(1), targets.shape[-1] // inputs.shape[-1])
            f_up, _ = ext.extract(up, progress=False)
            f_real, _ = ext.extract(targets, progress=False)
            r["bicubic_fid"] = METRICS.get("fid")(f_real, f_up)["fid"]
        r.update(identity_baseline(inputs, targets, ext, aligned=not hasattr(g.net, "ab")))
        row = {"run": label, "preset": preset, "overrides": " ".join(over), "budget_cpu_min": budget,
               "step": state.step, "seed": seed, "n": int(inputs.shape[0]), **r}
        rows.append(row)
        print(f"{label:20s} {budget:g} CPU-min (step {state.step}): " +
              ", ".join(f"{k} {v:.4g}" for k, v in r.items()), flush=True)
    return rows


@torch.no_grad()
def identity_baseline(inputs: torch.Tensor, targets: torch.Tensor, ext, *, aligned: bool) -> dict:
    """The do-nothing translation: the inputs themselves scored as outputs (same-size tasks only):
    ``input_psnr`` / ``input_ssim`` against aligned targets, ``input_fid`` against the targets."""
    from .metrics import METRICS
    from .metrics.image import psnr, ssim
    if inputs.shape[1:] != targets.shape[1:]:
        return {}
    x, y = targets.float().div(127.5).sub(1), inputs.float().div(127.5).sub(1)
    out = {}
    if aligned:
        out["input_psnr"] = float(psnr(y, x).clamp(max=100).mean())
        out["input_ssim"] = float(ssim(y, x).mean())
    f_in, _ = ext.extract(inputs, progress=False)
    f_t, _ = ext.extract(targets, progress=False)
    out["input_fid"] = METRICS.get("fid")(f_t, f_in)["fid"]
    return out


def i2i_baselines(n: int = 2000) -> list[dict]:
    """:func:`identity_baseline` for the same-size built-in tasks (no training)."""
    from .config import resolve
    from .data.pairs import load_config_pairs
    from .features import get_feature_extractor
    ext = get_feature_extractor("fmnist")
    rows = []
    for label, preset in (("pix2pix edges", "pix2pix"), ("deblur", "deblur"), ("CycleGAN shoes", "cyclegan")):
        cfg = resolve(preset)
        targets, inputs = load_config_pairs(cfg, "test", limit=n)
        r = identity_baseline(inputs, targets, ext, aligned=preset != "cyclegan")
        rows.append({"run": label, **r})
        print(f"identity baseline {label:16s}: " + ", ".join(f"{k} {v:.4g}" for k, v in r.items()), flush=True)
    return rows


# -- data augmentation with synthetic images ------------------------------------------------------------

def _train_classifier(x: torch.Tensor, y: torch.Tensor, *, seed: int, epochs: int, batch: int = 128):
    """The fmnist feature network's architecture trained from scratch on (x uint8, y)."""
    from .features import FmnistNet
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
    from .data.images import load_split
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


# -- tables ----------------------------------------------------------------------------------------------

def _mean_std(v):
    import statistics
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def tables(which: str, rows) -> str:
    if which == "stacked":
        lines = ["| preset | CPU-min | step | modes (of 1000) | KL to uniform |", "| --- | --- | --- | --- | --- |"]
        for r in rows:
            lines.append(f"| {r['preset']} | {r['budget_cpu_min']:g} | {r['step']} | {r.get('modes', float('nan')):.0f} | "
                         f"{r.get('kl', float('nan')):.3f} |")
        return "\n".join(lines)
    if which == "conditional":
        lines = ["| preset | CPU-min | step | FID | KID | precision | recall | density | coverage | class accuracy | intra-class FID |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            lines.append(f"| {r['preset']} | {r['budget_cpu_min']:g} | {r['step']} | {r['fid']:.2f} | {r['kid_mean']:.4f} | "
                         f"{r['precision']:.3f} | {r['recall']:.3f} | {r['density']:.3f} | {r['coverage']:.3f} | "
                         f"{100 * r['acc']:.1f} % | {r['ifid']:.2f} |")
        return "\n".join(lines)
    if which == "i2i":
        lines = ["| run | CPU-min | step | L1 | PSNR (dB) | SSIM | bicubic PSNR / SSIM | FID-fmnist (bicubic) | cycle L1 |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        f = lambda r, k, fmt: (format(r[k], fmt) if k in r else "–")  # noqa: E731
        for r in rows:
            bic = f"{r['bicubic_psnr']:.2f} / {r['bicubic_ssim']:.3f}" if "bicubic_psnr" in r else "–"
            fid = f(r, "fid", ".2f") + (f" ({r['bicubic_fid']:.2f})" if "bicubic_fid" in r else "")
            lines.append(f"| {r['run']} | {r['budget_cpu_min']:g} | {r['step']} | {f(r, 'l1', '.4f')} | {f(r, 'psnr', '.2f')} | "
                         f"{f(r, 'ssim', '.3f')} | {bic} | {fid} | {f(r, 'cycle_l1', '.4f')} |")
        return "\n".join(lines)
    if which == "augment":
        lines = ["| training set | images | test accuracy (mean ± std over seeds) | seeds |", "| --- | --- | --- | --- |"]
        for setting in dict.fromkeys(r["setting"] for r in rows):
            rs = [r for r in rows if r["setting"] == setting]
            m, s = _mean_std([100 * r["test_acc"] for r in rs])
            lines.append(f"| {setting} | {rs[0]['train_images']} | {m:.2f} ± {s:.2f} % | "
                         f"{','.join(str(r['seed']) for r in rs)} |")
        return "\n".join(lines)
    raise ValueError(which)


def main(args) -> str:
    """Run one of these benchmarks from ``ganforge bench``; returns the Markdown table(s)."""
    import json
    from pathlib import Path
    seed = int(args.seeds.split(",")[0])
    budget = float(args.budgets or 3)
    extra = {}
    if args.which == "stacked":
        presets = (args.presets or "dcgan,wgan-gp,sngan,pacgan").split(",")
        print(f"settings: stacked-fmnist, presets {presets} (+ {STACKED_PRESETS}), {budget:g} {BUDGET_NOTE}, "
              f"26000 samples from G (EMA when kept), fmnist classifier per channel, seed {seed}")
        rows = stacked(presets, budget, seed)
    elif args.which == "conditional":
        presets = (args.presets or "projection-dcgan,acgan").split(",")
        print(f"settings: fashion-mnist, presets {presets} (+ {COND_PRESETS}), {budget:g} {BUDGET_NOTE}, 10000 samples "
              f"(uniform labels) vs 10000 test images, features fmnist; accuracy and intra-class FID on 1000 "
              f"samples per class; seed {seed}")
        rows, states = conditional(presets, budget, seed)
        if args.augment:
            best = min(rows, key=lambda r: r["fid"])["preset"]
            print(f"augmentation study with synthetic images from {best}")
            aug = augment_study(as_generator(states[best]), seeds=[int(s) for s in args.seeds.split(",")])
            extra["augment"] = {"generator": best, "rows": aug}
    elif args.which == "i2i":
        only = args.presets.split(",") if args.presets else None
        print(f"settings: image-to-image presets with {I2I_SMALL}, {budget:g} {BUDGET_NOTE}, evaluation on 2000 "
              f"test pairs (CycleGAN: A-test translated vs B-test), features fmnist, seed {seed}")
        rows = i2i(budget, seed, only=only)
    else:
        raise ValueError(args.which)
    out = tables(args.which, rows)
    if "augment" in extra:
        out += "\n\n" + tables("augment", extra["augment"]["rows"])
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, **extra}, indent=1, default=float))
    return out
