"""Image-to-image after a fixed CPU budget: super-resolution x2 / x4 (pixel loss alone, then a
rising adversarial weight: L1 / PSNR / SSIM against bicubic, FID), pix2pix edges -> item and
deblurring (L1, PSNR, SSIM, FID), CycleGAN sneakers <-> ankle boots (FID of translations, cycle
error), with the do-nothing (identity) baseline for the same-size tasks.

    python -m benchmarks.i2i --budgets 2 --threads 1 --seeds 0 --json i2i.json
    python -m benchmarks.i2i --presets residual --budgets 2    # only the runs whose label has "residual"
"""

from __future__ import annotations

import torch

from .common import (BUDGET_NOTE, as_generator, fid_from_features, bicubic_upscale, budget_train, cli, finish,
                     get_feature_extractor, header, load_config_pairs, make_parser, psnr, resolve, ssim,
                     translation_results)

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
            up = bicubic_upscale(inputs.float().div(127.5).sub(1), targets.shape[-1] // inputs.shape[-1])
            f_up, _ = ext.extract(up, progress=False)
            f_real, _ = ext.extract(targets, progress=False)
            r["bicubic_fid"] = fid_from_features(f_real, f_up)
        r.update(identity_baseline(inputs, targets, ext, aligned=not g.task.two_way))
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
    if inputs.shape[1:] != targets.shape[1:]:
        return {}
    x, y = targets.float().div(127.5).sub(1), inputs.float().div(127.5).sub(1)
    out = {}
    if aligned:
        out["input_psnr"] = float(psnr(y, x).clamp(max=100).mean())
        out["input_ssim"] = float(ssim(y, x).mean())
    f_in, _ = ext.extract(inputs, progress=False)
    f_t, _ = ext.extract(targets, progress=False)
    out["input_fid"] = fid_from_features(f_t, f_in)
    return out


def i2i_baselines(n: int = 2000) -> list[dict]:
    """:func:`identity_baseline` for the same-size built-in tasks (no training)."""
    ext = get_feature_extractor("fmnist")
    rows = []
    for label, preset in (("pix2pix edges", "pix2pix"), ("deblur", "deblur"), ("CycleGAN shoes", "cyclegan")):
        cfg = resolve(preset)
        targets, inputs = load_config_pairs(cfg, "test", limit=n)
        r = identity_baseline(inputs, targets, ext, aligned=preset != "cyclegan")
        rows.append({"run": label, **r})
        print(f"identity baseline {label:16s}: " + ", ".join(f"{k} {v:.4g}" for k, v in r.items()), flush=True)
    return rows


def i2i_table(rows) -> str:
    lines = ["| run | CPU-min | step | L1 | PSNR (dB) | SSIM | bicubic PSNR / SSIM | FID-fmnist (bicubic) | cycle L1 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    f = lambda r, k, fmt: (format(r[k], fmt) if k in r else "–")  # noqa: E731
    for r in rows:
        bic = f"{r['bicubic_psnr']:.2f} / {r['bicubic_ssim']:.3f}" if "bicubic_psnr" in r else "–"
        fid = f(r, "fid", ".2f") + (f" ({r['bicubic_fid']:.2f})" if "bicubic_fid" in r else "")
        lines.append(f"| {r['run']} | {r['budget_cpu_min']:g} | {r['step']} | {f(r, 'l1', '.4f')} | {f(r, 'psnr', '.2f')} | "
                     f"{f(r, 'ssim', '.3f')} | {bic} | {fid} | {f(r, 'cycle_l1', '.4f')} |")
    return "\n".join(lines)


def main(args) -> int:
    seed = args.seeds[0]
    budget = float(args.budgets or 3)
    only = args.presets.split(",") if args.presets else None
    header(args, f"image-to-image presets with {I2I_SMALL}, {budget:g} {BUDGET_NOTE}, evaluation on 2000 "
                 f"test pairs (CycleGAN: A-test translated vs B-test), features fmnist, seed {seed}", seeds=[seed])
    rows = i2i(budget, seed, only=only)
    return finish(args, rows, i2i_table(rows))


parser = make_parser("i2i", __doc__.split("\n\n")[0],
                     seeds="comma-separated seeds; the first is used (default 0,1,2)",
                     presets="comma-separated parts of run labels: only the runs whose label contains one "
                             "(e.g. residual, SR x4, pix2pix; default: all)",
                     budgets="CPU-minutes of training per run (default 3)")

if __name__ == "__main__":
    cli(parser, main)
