"""Evaluation: sampling, feature extraction and caching around the pure metric maths.

``evaluate_generator`` samples ``n`` images from a generator, extracts features with a
registered extractor, and compares them with cached reference features of a dataset split.
Every result carries its provenance (extractor and its SHA-256, n, reference, seed, checkpoint
step, package versions) so numbers can be reproduced and compared honestly.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path

import torch
from torch import Tensor

from . import __version__
from .metrics import METRICS

# names accepted by `ganforge eval --metrics` -> registered metric computing them
METRIC_ALIASES = {"fid": "fid", "kid": "kid", "pr": "prdc", "dc": "prdc", "prdc": "prdc",
                  "is": "inception_score", "inception_score": "inception_score"}
PREPROCESSING = "v1: uint8 [0,255] -> [-1,1] float; extractor resizes/converts channels itself"


class EvalError(ValueError):
    """A bad evaluation request (unknown metric, too few samples, bad reference): one line."""


def parse_metrics(spec: str | list[str]) -> list[str]:
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for n in (s.strip() for s in names if s.strip()):
        if n not in METRIC_ALIASES:
            from .registry import did_you_mean
            raise EvalError(f"unknown metric '{n}'{did_you_mean(n, [*METRIC_ALIASES, 'modes', 'acc', 'ifid'])}; "
                            f"choose from: fid, kid, pr, dc, is, modes, acc, ifid")
        if METRIC_ALIASES[n] not in out:
            out.append(METRIC_ALIASES[n])
    if not out:
        raise EvalError("no metrics requested")
    return out


def parse_ref(ref: str) -> tuple[str, str]:
    name, _, split = ref.partition(":")
    split = split or "test"
    if split not in ("train", "test"):
        raise EvalError(f"reference split must be train or test, got '{split}' in '{ref}'")
    return name, split


def cache_dir() -> Path:
    import os
    return Path(os.environ.get("GANFORGE_CACHE", "~/.cache/ganforge")).expanduser() / "refstats"


def reference_features(ref: str, extractor, *, n: int = 0, image_size: int = 0, channels: int = 0,
                       root: str | Path | None = None, cache: bool = True) -> tuple[Tensor, Tensor, dict]:
    """(features, probs, provenance) of a dataset split, cached on disk by everything that
    determines them (dataset, split, n, size, channels, extractor name and SHA-256, preprocessing)."""
    from safetensors.torch import load_file, save_file

    from .data.images import load_split
    name, split = parse_ref(ref)
    prov = {"dataset": name, "split": split, "n": int(n), "image_size": image_size, "channels": channels,
            "extractor": extractor.name, "extractor_sha256": extractor.sha256, "preprocessing": PREPROCESSING}
    key = hashlib.sha256(json.dumps(prov, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{split}-{extractor.name}-{key}.safetensors"
    if cache and path.is_file():
        try:
            t = load_file(str(path))
            return t["features"], t["probs"], {**prov, "cache": str(path)}
        except Exception:  # a damaged cache is recomputed, never trusted
            path.unlink(missing_ok=True)
    images, _ = load_split(name, split, root=root, image_size=image_size, channels=channels, limit=n)
    feats, probs = extractor.extract(images)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"features": feats.contiguous(), "probs": probs.contiguous()}, str(tmp),
                  metadata={"provenance": json.dumps(prov)})
        tmp.replace(path)
    return feats, probs, {**prov, "cache": str(path) if cache else None}


@torch.no_grad()
def generated_features(sample_fn, n: int, extractor, *, batch_size: int = 500, seed: int = 0,
                       progress: bool | None = None) -> tuple[Tensor, Tensor]:
    """Features of ``n`` samples drawn batch by batch with ``sample_fn(k, seed) -> images``."""
    from tqdm.auto import tqdm
    feats, probs = [], []
    starts = list(range(0, n, batch_size))
    show = progress if progress is not None else len(starts) > 4
    for i, s in enumerate(tqdm(starts, desc="generating + features", unit="batch", disable=not show, leave=False)):
        x = sample_fn(min(batch_size, n - s), seed * 1_000_003 + i)
        f, p = extractor(x)
        feats.append(f.cpu())
        probs.append(p.cpu())
    return torch.cat(feats), torch.cat(probs)


def compute(metrics: list[str], real_f: Tensor, fake_f: Tensor, fake_probs: Tensor | None = None,
            *, seed: int = 0) -> dict[str, float]:
    """Registered metrics on feature sets (KID subsets are drawn with ``seed``)."""
    out: dict[str, float] = {}
    n = min(len(real_f), len(fake_f))
    for m in metrics:
        fn = METRICS.get(m)
        if m == "kid":
            out.update(fn(real_f, fake_f, subset_size=min(1000, n), seed=seed))
        elif m == "inception_score":
            if fake_probs is None:
                raise EvalError("the 'is' metric needs an extractor with class probabilities")
            out.update(fn(None, fake_probs, splits=10))
        else:
            out.update(fn(real_f, fake_f))
    return out


def environment() -> dict:
    import numpy
    return {"ganforge": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def evaluate_generator(sample_fn, *, metrics="fid,kid,pr,dc,is", features: str = "fmnist",
                       n: int = 10000, ref: str = "fashion-mnist:test", seed: int = 0,
                       ref_n: int = 0, device="cpu", progress: bool | None = None,
                       extractor=None) -> dict:
    """Evaluate any sampler ``sample_fn(k, seed) -> (k, C, H, W) images in [-1, 1]``."""
    from .features import get_feature_extractor
    if n < 2:
        raise EvalError(f"--n must be at least 2, got {n}")
    names = parse_metrics(metrics)
    t0 = time.perf_counter()
    ext = extractor or get_feature_extractor(features, device=device)
    real_f, _, ref_prov = reference_features(ref, ext, n=ref_n)
    t1 = time.perf_counter()
    fake_f, fake_p = generated_features(sample_fn, n, ext, seed=seed, progress=progress)
    t2 = time.perf_counter()
    results = compute(names, real_f, fake_f, fake_p, seed=seed)
    t3 = time.perf_counter()
    return {"results": results,
            "provenance": {"extractor": ext.name, "extractor_sha256": ext.sha256, "n": n,
                           "reference": ref, "reference_n": len(real_f), "reference_cache": ref_prov.get("cache"),
                           "seed": seed, "metrics": names, **environment()},
            "seconds": {"reference": t1 - t0, "generate_features": t2 - t1, "metrics": t3 - t2}}


def mode_results(g, n: int, seed: int = 0) -> dict:
    """Mode coverage of a run's generator: the PROTOCOLS.md mixtures (modes, % high quality,
    reverse KL) for ring8 / grid25 / gauss1d, or the 1000 class triples of stacked-fmnist."""
    from .data.toy import MIXTURES
    from .metrics import mode_metrics
    data = g.cfg.data.name
    if data in MIXTURES:
        m = MIXTURES[data]()
        return mode_metrics(g.sample(n, seed=seed), m.means, m.std)
    if data == "stacked-fmnist":
        from .data.stacked import stacked_modes
        return stacked_modes(lambda k, s: g.sample(k, seed=s), n=n, seed=seed)
    raise EvalError(f"'modes' needs a run on ring8, grid25, gauss1d or stacked-fmnist, not '{data}'")


CONDITIONAL_METRICS = ("acc", "ifid")


@torch.no_grad()
def conditional_results(g, *, n: int, ref: str, extractor, seed: int = 0) -> dict:
    """For class-conditional generators, ``n // K`` samples of each of the K classes:

    * ``acc``: the extractor's classifier accuracy on them (does a sample show its class?);
    * ``ifid``: intra-class FID, the mean over classes of the FID between a class's samples and
      the reference images of that class (``ifid_<k>`` per class).
    """
    from .data.images import load_split
    if not g.conditional:
        raise EvalError("acc / ifid need a class-conditional run (model.conditional=true)")
    if not extractor.num_classes or extractor.num_classes != g.num_classes:
        raise EvalError(f"the {extractor.name} extractor classifies {extractor.num_classes} classes, "
                        f"the model has {g.num_classes}")
    name, split = parse_ref(ref)
    real_f, _, _ = reference_features(ref, extractor)
    _, labels = load_split(name, split)
    per = n // g.num_classes
    if per < 2:
        raise EvalError(f"--n {n} gives fewer than 2 samples per class")
    fid = METRICS.get("fid")
    correct, out = 0, {}
    for k in range(g.num_classes):
        x = g.sample(per, seed=seed * 1_000_003 + k, labels=k)
        f, p = extractor.extract(x, progress=False)
        correct += int((p.argmax(1) == k).sum())
        out[f"ifid_{k}"] = fid(real_f[labels == k], f)["fid"]
    res = {"acc": correct / (per * g.num_classes),
           "ifid": sum(out.values()) / g.num_classes, **out}
    return res


@torch.no_grad()
def translation_results(g, inputs: Tensor, targets: Tensor, *, extractor=None, baseline: bool = False,
                        direction: str = "ab", batch_size: int = 200) -> dict:
    """Image-to-image quality of ``g`` on uint8 ``inputs`` against uint8 ``targets``:

    * paired (aligned) data: ``l1`` (mean |G(y) - x| on [-1, 1]), ``psnr`` and ``ssim`` means, and
      with ``baseline`` (super-resolution) the same for bicubic upsampling (``bicubic_*``);
    * with an ``extractor``: ``fid`` of the outputs against the targets (which need not be aligned,
      e.g. CycleGAN's other domain); for two-way models also ``cycle_l1``, the mean
      |G_ba(G_ab(a)) - a| (the cycle reconstruction error).
    """
    from .metrics.image import bicubic_upscale, psnr, ssim
    res: dict[str, float] = {}
    aligned = inputs.shape[0] == targets.shape[0] and not hasattr(g.net, "ab")
    outs, sums = [], {"l1": 0.0, "psnr": 0.0, "ssim": 0.0, "bicubic_psnr": 0.0, "bicubic_ssim": 0.0,
                      "cycle_l1": 0.0}
    for i in range(0, inputs.shape[0], batch_size):
        y = inputs[i:i + batch_size].float().div(127.5).sub(1)
        out = g.translate(y, direction=direction)
        outs.append(out)
        if aligned:
            x = targets[i:i + batch_size].float().div(127.5).sub(1)
            sums["l1"] += float((out - x).abs().mean((1, 2, 3)).sum())
            sums["psnr"] += float(psnr(out, x).clamp(max=100).sum())
            sums["ssim"] += float(ssim(out, x).sum())
            if baseline:
                up = bicubic_upscale(y, x.shape[-1] // y.shape[-1])
                sums["bicubic_psnr"] += float(psnr(up, x).clamp(max=100).sum())
                sums["bicubic_ssim"] += float(ssim(up, x).sum())
        if hasattr(g.net, "ab"):
            back = g.translate(out, direction="ba" if direction == "ab" else "ab")
            sums["cycle_l1"] += float((back - y).abs().mean((1, 2, 3)).sum())
    n = inputs.shape[0]
    keys = (["l1", "psnr", "ssim"] if aligned else []) + (["bicubic_psnr", "bicubic_ssim"] if aligned and baseline else []) \
        + (["cycle_l1"] if hasattr(g.net, "ab") else [])
    res.update({k: sums[k] / n for k in keys})
    if extractor is not None:
        real_f, _ = extractor.extract(targets, progress=False)
        fake_f, _ = extractor.extract(torch.cat(outs), progress=False)
        res["fid"] = METRICS.get("fid")(real_f, fake_f)["fid"]
    return res


def evaluate_translation(g, run_dir, *, n: int = 10000, features: str = "fmnist", device="cpu",
                         split: str = "test") -> dict:
    """``ganforge eval`` for image-to-image runs: the test split of the run's task (built-in
    tasks) or the run's own folders, through :func:`translation_results`."""
    from .data import build_dataset
    from .data.pairs import PAIR_TASKS, load_config_pairs
    from .features import get_feature_extractor
    t0 = time.perf_counter()
    if g.cfg.data.name in PAIR_TASKS:
        targets, inputs = load_config_pairs(g.cfg, split, limit=n)
        ref = f"{g.cfg.data.name}:{split}"
    else:  # the run's own folders (no separate test split): say so in the provenance
        src = build_dataset(g.cfg)
        targets, inputs = (src.data, src.inputs) if hasattr(src, "inputs") else (src.b.data, src.a.data)
        targets, inputs = targets[:n], inputs[:n]
        ref = f"{g.cfg.data.name} (training folders)"
    ext = get_feature_extractor(features, device=device) if features else None
    sr = tuple(inputs.shape[2:]) != tuple(targets.shape[2:])
    res = translation_results(g, inputs, targets, extractor=ext, baseline=sr)
    return {"results": res, "seconds": {"total": time.perf_counter() - t0},
            "provenance": {"run": str(run_dir), "checkpoint": str(g.checkpoint), "step": g.step, "ema": g.ema,
                           "n": int(inputs.shape[0]), "reference": ref, "reference_n": int(targets.shape[0]),
                           "extractor": ext.name if ext else "-", "extractor_sha256": ext.sha256 if ext else "-",
                           "seed": 0, "metrics": list(res), **environment()}}


def evaluate_run(run_dir, *, checkpoint=None, ema=None, **kwargs) -> dict:
    """Evaluate a run folder's generator (newest checkpoint by default); ``modes`` among the
    metrics adds the mode-coverage results of toy mixtures and stacked-fmnist."""
    from .api import load
    g = load(run_dir, checkpoint, ema=ema, device=kwargs.get("device", "cpu"))
    names = [m.strip() for m in str(kwargs.get("metrics", "")).split(",") if m.strip()]
    if g.data_kind in ("paired", "unpaired"):
        return evaluate_translation(g, run_dir, n=kwargs.get("n", 10000), features=kwargs.get("features", "fmnist"),
                                    device=kwargs.get("device", "cpu"))
    cond = [m for m in names if m in CONDITIONAL_METRICS]
    if cond:
        from .features import get_feature_extractor
        rest = [m for m in names if m not in CONDITIONAL_METRICS]
        ext = get_feature_extractor(kwargs.get("features", "fmnist"), device=kwargs.get("device", "cpu"))
        ref = kwargs.get("ref") or f"{g.cfg.data.name}:test"
        t0 = time.perf_counter()
        res = conditional_results(g, n=kwargs.get("n", 10000), ref=ref, extractor=ext, seed=kwargs.get("seed", 0))
        if rest:
            out = evaluate_run(run_dir, checkpoint=checkpoint, ema=ema, **{**kwargs, "metrics": ",".join(rest)})
        else:
            out = {"results": {}, "seconds": {}, "provenance": {
                "extractor": ext.name, "extractor_sha256": ext.sha256, "n": kwargs.get("n", 10000), "reference": ref,
                "reference_n": 0, "seed": kwargs.get("seed", 0), "metrics": [], **environment(),
                "run": str(run_dir), "checkpoint": str(g.checkpoint), "step": g.step, "ema": g.ema}}
        out["results"].update(res)
        out["provenance"]["metrics"] += cond
        out["seconds"]["conditional"] = time.perf_counter() - t0
        return out
    if "modes" in names:
        names.remove("modes")
        n, seed = kwargs.get("n", 10000), kwargs.get("seed", 0)
        res = mode_results(g, n, seed)
        out = {"results": dict(res), "seconds": {}, "provenance": {"n": n, "seed": seed, "metrics": ["modes"],
                                                                 "reference": g.cfg.data.name, **environment()}}
        if names:
            rest = evaluate_run(run_dir, checkpoint=checkpoint, ema=ema, **{**kwargs, "metrics": ",".join(names)})
            rest["results"].update(out["results"])
            rest["provenance"]["metrics"].append("modes")
            return rest
        out["provenance"].update({"run": str(run_dir), "checkpoint": str(g.checkpoint), "step": g.step,
                                  "ema": g.ema, "extractor": "fmnist" if g.cfg.data.name == "stacked-fmnist" else "-",
                                  "extractor_sha256": "-", "reference_n": 0})
        return out
    if not kwargs.get("ref"):
        from .data.images import IMAGE_DATASETS
        if g.cfg.data.name not in IMAGE_DATASETS:
            raise EvalError(f"the run trained on '{g.cfg.data.name}': give a reference with --ref dataset:split")
        kwargs["ref"] = f"{g.cfg.data.name}:test"
    out = evaluate_generator(lambda k, s: g.sample(k, seed=s), **kwargs)
    out["provenance"].update({"run": str(run_dir), "checkpoint": str(g.checkpoint), "step": g.step,
                              "ema": g.ema})
    return out


def format_table(results: dict) -> str:
    width = max(map(len, results)) if results else 0
    return "\n".join(f"{k:<{width}}  {v:.6g}" for k, v in results.items())
