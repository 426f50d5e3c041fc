"""Labelled synthetic datasets from class-conditional generators (ImageFolder layout)."""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import UsageError
from .imagefiles import write_image


@torch.no_grad()
def synthesize(g, per_class: int, out: str | Path, *, seed: int = 0, truncation: float | None = None,
               class_names: list[str] | None = None, batch_size: int = 256) -> dict[str, int]:
    """``per_class`` images of every class in an ImageFolder layout: ``out/<k>-<name>/NNNNN.png``."""
    if not g.conditional:
        raise UsageError("synthesize needs a class-conditional model (train with --set model.conditional=true)")
    if per_class < 1:
        raise UsageError(f"per_class must be >= 1, got {per_class}")
    out = Path(out)
    counts = {}
    for k in range(g.num_classes):
        name = f"{k}-{class_names[k]}" if class_names and k < len(class_names) else f"{k}"
        name = name.replace("/", "-").replace(" ", "_")
        x = g.sample(per_class, seed=seed * 1000 + k, labels=k, truncation=truncation, batch_size=batch_size)
        for i, img in enumerate(x):
            write_image(img, out / name / f"{i:05d}.png")
        counts[name] = per_class
    return counts


__all__ = ["synthesize"]
