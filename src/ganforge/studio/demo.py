"""Fake run folders with the real layout, for trying the studio, its tests and its benchmark.

A fake run has config.yaml, run.json, a metrics.jsonl of smooth made-up curves, a few sample
grids (flat grey levels that change with the step, so a timeline visibly moves) and no weights.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from ..config import Config, preset_config
from ..rundir import CONFIG, METRICS, RUN_INFO, SAMPLES


def metrics_row(step: int, rng: random.Random) -> dict:
    """One made-up metrics line at ``step``: the keys the real loop logs for a non-saturating GAN."""
    t = step / 1000
    d = 0.7 + 0.5 * math.exp(-t) + 0.05 * rng.gauss(0, 1)
    return {"step": step, "loss/D/adv": d, "loss/D": d, "D/real": 1.5 * math.exp(-t / 3) + 0.1 * rng.gauss(0, 1),
            "D/fake": -1.5 * math.exp(-t / 3) + 0.1 * rng.gauss(0, 1), "D(x)": 0.5 + 0.3 * math.exp(-t),
            "D(G(z))": 0.5 - 0.3 * math.exp(-t), "grad/D": 5 + rng.random(), "loss/G/adv": 1.4 - 0.3 * math.exp(-t),
            "loss/G": 1.4 - 0.3 * math.exp(-t) + 0.05 * rng.gauss(0, 1), "grad/G": 2 + rng.random(),
            "img/s": 1400 + 50 * rng.gauss(0, 1), "kimg": step * 64 / 1000, "time": step / 20}


def write_sample_png(path: Path, level: int, size: int = 64, label: str = "") -> None:
    """A flat grey square (``level``) with ``label`` written on it."""
    from PIL import Image, ImageDraw
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("L", (size, size), int(level) % 256)
    if label:
        ImageDraw.Draw(im).text((4, size // 2 - 6), label, fill=0 if level > 128 else 255)
    im.save(path)


def write_fake_run(root: str | Path, name: str, *, steps: int = 1000, log_every: int = 1, preset: str = "dcgan",
                   samples: int = 4, seed: int = 0, result: str | None = "done") -> Path:
    """``root/name`` with ``steps // log_every`` metrics lines, ``samples`` grids spread over the
    steps and (``result`` not None) a result.json with that reason."""
    run = Path(root) / name
    (run / SAMPLES).mkdir(parents=True, exist_ok=True)
    cfg: Config = preset_config(preset)
    cfg.train.steps = steps
    cfg.out = str(root)
    (run / CONFIG).write_text(cfg.to_yaml())
    (run / RUN_INFO).write_text(json.dumps({"data_shape": [1, 28, 28], "task": "generate", "num_classes": 0,
                                            "data": "fake", "arch": cfg.model.arch, "g_args": {}, "d_args": {}}))
    rng = random.Random(seed)
    with open(run / METRICS, "w") as f:
        for s in range(log_every, steps + 1, log_every):
            f.write(json.dumps(metrics_row(s, rng)) + "\n")
    for i in range(1, samples + 1):
        s = steps * i // samples
        write_sample_png(run / SAMPLES / f"step-{s:07d}.png", 40 + 50 * i, label=f"step {s}")
    if result is not None:
        (run / "result.json").write_text(json.dumps({"reason": result, "step": steps}))
    return run


def append_metrics(run: str | Path, steps, seed: int = 0) -> None:
    """Append metrics lines for ``steps`` to a run's metrics.jsonl (as a training run would)."""
    rng = random.Random(seed)
    with open(Path(run) / METRICS, "a") as f:
        for s in steps:
            f.write(json.dumps(metrics_row(s, rng)) + "\n")


__all__ = ["write_fake_run", "append_metrics", "metrics_row", "write_sample_png"]
