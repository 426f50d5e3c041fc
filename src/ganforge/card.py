"""Model cards for model folders: README.md with YAML front matter, and the sample picture.

The front matter follows the Hugging Face model-card conventions (``library_name``, ``license``,
``tags``, ``pipeline_tag``, ``datasets``) and keeps ganforge's own facts under ``ganforge:``:
the task, the training length (steps, images seen, time; from ``result.json`` and
``metrics.jsonl``) and the newest evaluation (``eval-step*.json``) with its provenance.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml

from .rundir import METRICS, SAMPLES, read_metrics

# MODEL-KIND (presentation only; keyed on model_folder.task_kind): Hub pipeline tags. The Hub has
# no class-conditional one, so those share the unconditional tag
_PIPELINE = {"noise-to-image": "unconditional-image-generation", "class-conditional": "unconditional-image-generation",
             "image-to-image (paired)": "image-to-image", "image-to-image (unpaired)": "image-to-image"}


def training_facts(run: Path) -> dict:
    """Steps, images seen and wall time of a run, with where each number comes from."""
    out: dict = {}
    try:
        result = json.loads((run / "result.json").read_text())
        out.update({"steps": result.get("step"), "end": result.get("reason")})
    except (OSError, ValueError):
        result = None
    rows = [r for r in read_metrics(run) if isinstance(r, dict)] if (run / METRICS).is_file() else []
    if rows:
        last = rows[-1]
        out.setdefault("steps", last.get("step"))
        if isinstance(last.get("kimg"), (int, float)):
            out["images_seen"] = int(round(last["kimg"] * 1000))
        # "time" restarts at each resumed session: add up each session's last value
        total, prev = 0.0, 0.0
        for r in rows:
            t = r.get("time")
            if isinstance(t, (int, float)):
                if t < prev:
                    total += prev
                prev = t
        out["seconds_logged"] = round(total + prev, 2)
    if result is not None and isinstance(result.get("seconds"), (int, float)):
        out["seconds_last_session"] = round(result["seconds"], 2)
    out["source"] = ", ".join(n for n, ok in (("result.json", result is not None), (METRICS, bool(rows))) if ok) \
        or "none (the run has no result.json or metrics.jsonl)"
    return out


def latest_eval(run: Path) -> dict | None:
    """The newest ``eval-step*.json`` of a run: its results with their provenance."""
    files = [(int(m.group(1)), p) for p in run.glob("eval-step*.json")
             if (m := re.match(r"eval-step(\d+)\.json$", p.name))]
    if not files:
        return None
    step, path = max(files)
    try:
        d = json.loads(path.read_text())
        prov = d.get("provenance", {})
    except (OSError, ValueError, AttributeError):
        return None
    keep = ("step", "ema", "n", "reference", "reference_n", "extractor", "extractor_sha256", "seed", "checkpoint")
    return {"file": path.name, "results": {k: float(v) for k, v in d.get("results", {}).items()
                                           if isinstance(v, (int, float))},
            "provenance": {k: prov[k] for k in keep if k in prov}}


def write_sample(g, run: Path, dest: Path, *, seed: int = 0) -> str | None:
    """Write the card's picture; returns a description (None when there is none to show). MODEL-KIND:
    Noise models: samples from the saved weights (one row per class for conditional ones).
    Image-to-image models: the run's newest before/after grid (they need real inputs)."""
    import torch

    from .viz import save_grid
    if g.task.takes_images:
        grids = sorted((run / SAMPLES).glob("*.png"))
        if not grids:
            return None
        shutil.copyfile(grids[-1], dest)
        return f"input / output grid from training ({SAMPLES}/{grids[-1].name})"
    if g.conditional:
        per = max(1, min(8, 64 // g.num_classes))
        x = g.sample(per * g.num_classes, seed=seed, labels=torch.arange(g.num_classes).repeat_interleave(per))
        nrow, what = per, f"{per} samples per class, one row per class"
    else:
        x = g.sample(64, seed=seed)
        nrow, what = 8, "64 samples"
    if x.dim() == 4:
        save_grid(x, dest, nrow=nrow)
    else:
        g.task.save_samples(x, dest)  # vectors: a scatter plot; sequences: line plots
    return f"{what}, seed {seed}, from these weights"


def _tags(facts: dict) -> list[str]:
    return list(dict.fromkeys(["ganforge", "gan", facts["arch"], *([facts["preset"]] if facts.get("preset") else [])]))


def front_matter(g, run: Path, facts: dict, *, license: str) -> dict:
    ev = latest_eval(run)
    metrics = None
    if ev is not None:
        metrics = {k: {"value": v, **ev["provenance"], "source": ev["file"]} for k, v in ev["results"].items()}
    return {
        "library_name": "ganforge",
        "license": license,
        "tags": _tags(facts),
        "pipeline_tag": _PIPELINE.get(facts["task"], "unconditional-image-generation"),
        "datasets": [facts["dataset"]],
        "ganforge": {"task": facts["task"], "arch": facts["arch"], "preset": facts.get("preset") or None,
                     "dataset": facts["dataset"], "step": facts["step"], "ema": facts["ema"],
                     "training": training_facts(run), "metrics": metrics},
    }


def _use_line(facts: dict) -> str:  # MODEL-KIND (presentation only): the card's usage line
    if facts["two_way"]:
        return 'y = g.translate(images, direction="ab")  # (N, C, H, W) in [-1, 1]; "ba" for the way back'
    if facts["takes_images"]:
        return "y = g.translate(images)  # (N, C, H, W) in [-1, 1]"
    if facts["num_classes"]:
        return "x = g.sample(16, seed=0, labels=3)  # 16 samples of class 3, in [-1, 1]"
    return "x = g.sample(16, seed=0)  # in [-1, 1]"


def write_card(g, run: Path, dest: Path, facts: dict, *, license: str = "other", picture: str | None = None) -> None:
    fm = front_matter(g, run, facts, license=license)
    gf = fm["ganforge"]
    tr = gf["training"]
    lines = ["---", yaml.safe_dump(fm, sort_keys=False).rstrip(), "---", "",
             f"# {facts['arch']} generator ({facts['task']}) trained with ganforge", "",
             f"- dataset: `{facts['dataset']}`; generates images of shape {tuple(facts['data_shape'])} "
             f"in [-1, 1]" + (f" from inputs of shape {tuple(facts['input_shape'])}" if facts["input_shape"] else ""),
             f"- weights: step {facts['step']}{' (exponential moving average)' if facts['ema'] else ''}"]
    if facts["z_dim"] and not facts["takes_images"]:
        lines.append(f"- latent: z of size {facts['z_dim']}, {facts['latent']}")
    if facts["num_classes"]:
        names = facts["class_names"] or list(range(facts["num_classes"]))
        lines.append(f"- classes ({facts['num_classes']}): " + ", ".join(map(str, names)))
    if tr.get("images_seen") is not None:
        lines.append(f"- training: {tr.get('steps')} steps, {tr['images_seen']:,} images seen, "
                     f"{tr.get('seconds_logged', 0):.3g} s of logged training time ({tr['source']})")
    if gf["metrics"]:
        lines += ["", "## Evaluation", "", "| metric | value | step | samples | reference | features |",
                  "|---|---|---|---|---|---|"]
        for k, m in gf["metrics"].items():
            lines.append(f"| {k} | {m['value']:.4g} | {m.get('step', '?')} | {m.get('n', '?')} | "
                         f"{m.get('reference', '?')} | {m.get('extractor', '?')} |")
        lines.append(f"\nFrom `{next(iter(gf['metrics'].values()))['source']}` in the run folder.")
    else:
        lines += ["", "No evaluation was recorded in the run folder (`ganforge eval RUN` writes one)."]
    if picture:
        lines += ["", "## Sample", "", "![sample](sample.png)", "", picture]
    lines += ["", "## Use", "", "```python", "import ganforge", 'g = ganforge.load("path/to/this/folder")',
              _use_line(facts), "```", "",
              "Without ganforge: `ganforge export THIS_FOLDER --out model.onnx` writes an ONNX file for "
              "onnxruntime (inputs and value ranges are in its metadata).", "",
              f"License of the weights: {license}.", ""]
    dest.write_text("\n".join(lines))


__all__ = ["write_card", "write_sample", "front_matter", "training_facts", "latest_eval"]
