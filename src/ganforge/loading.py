"""``ganforge.load``: a trained generator from a run folder, a model folder (``ganforge save-model``)
or the Hugging Face Hub (``hf://user/name[@revision]``)."""

from __future__ import annotations

from pathlib import Path

import torch

from .model_folder import is_model_folder, load_model_folder
from .trained import TrainedGenerator, load_run


def load(path: str | Path, checkpoint: str | int | None = None, *, ema: bool | None = None,
         device: str | torch.device = "cpu") -> TrainedGenerator:
    """The generator of a run (newest checkpoint by default; ``checkpoint`` a step or folder), of a
    model folder, or of ``hf://user/name``. ``ema=None`` uses the EMA weights when they were kept."""
    if is_model_folder(path):
        return load_model_folder(path, device, checkpoint=checkpoint, ema=ema)
    return load_run(path, checkpoint, ema=ema, device=device)


__all__ = ["load"]
