"""``ganforge project``: put image files into a trained generator's latent space.

For every input image (read at the model's size and channels by :func:`ganforge.imagefiles.read_image`)
:func:`ganforge.project.project` optimises a latent (z for any unconditional or class-conditional
image generator; w or w+ for style-based ones) against pixel MSE plus ``perceptual_weight`` times
the offline feature distance (:class:`ganforge.perceptual.FeatureDistance`: the shipped
Fashion-MNIST classifier's normalised features). Written per image ``NAME`` into ``out``:

- ``NAME.safetensors``: tensor ``latent`` (z (z_dim,), or ws (num_ws, w_dim) ready for
  ``G.synthesize``), with ``noise.K`` planes when the noise was optimised; metadata: space,
  source file, model checkpoint and step, class, steps, final PSNR;
- ``NAME-projected.png``: the reconstruction;
- ``NAME-steps.png``: the optimisation as a strip (``frames`` snapshots, then the target);
- ``NAME-steps.gif``: the target beside the reconstruction as it is optimised.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import UsageError
from .imagefiles import input_files, read_image, write_image
from .project import SPACES, project

BATCH = 16  # images projected together


def check_projectable(g, space: str, labels) -> None:
    """One-line errors for models or options that cannot be projected into."""
    g.task.require("project")
    if len(g.data_shape) != 3:
        raise UsageError("projection needs an image generator; this model makes vectors")
    if space not in SPACES:
        raise UsageError(f"unknown projection space '{space}'; choose from {', '.join(SPACES)}")
    if space != "z" and not g.style_based:
        raise UsageError(f"--space {space} needs a style-based generator (e.g. the stylegan2 preset); "
                         f"use --space z for this model")
    if g.conditional and labels is None:
        raise UsageError("this model is class-conditional: give the images' class with --class K")


def _pick(frames: list[Tensor], k: int) -> list[Tensor]:
    """k snapshots spread evenly over the recorded ones, always including the first and the last."""
    if len(frames) <= k:
        return frames
    idx = np.linspace(0, len(frames) - 1, k).round().astype(int)
    return [frames[i] for i in idx]


def save_progress(target: Tensor, frames: list[Tensor], png: Path, gif: Path, duration_ms: int = 150) -> None:
    """The strip (snapshots then the target, one row) and a GIF of target | snapshot (C, H, W) each."""
    from PIL import Image
    from torchvision.utils import make_grid

    from .viz import save_grid
    save_grid(torch.stack([*frames, target]), png, nrow=len(frames) + 1)
    images = []
    for f in frames + [frames[-1]] * 3:  # linger on the result
        grid = make_grid(torch.stack([target, f]).float().clamp(-1, 1), nrow=2, normalize=True,
                         value_range=(-1, 1), padding=2, pad_value=1.0)
        images.append(Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)))
    images[0].save(gif, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


def project_files(g, inputs: list[str], out: str | Path, *, space: str = "z", steps: int = 300, lr: float = 0.1,
                  perceptual_weight: float = 1.0, optimize_noise: bool = False, labels: int | None = None,
                  seed: int = 0, frames: int = 8, progress: bool = True, distance=None) -> list[dict]:
    """Project image files with a loaded model ``g`` (:class:`~ganforge.trained.TrainedGenerator`);
    returns one record per image (``file``, ``latent``, ``psnr`` of the reconstruction and
    ``start_psnr`` of the starting latent's image against the target, the final ``loss``). ``distance``: the
    perceptual distance (default :class:`~ganforge.perceptual.FeatureDistance`)."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from .metrics.image import psnr
    from .perceptual import FeatureDistance
    check_projectable(g, space, labels)
    if optimize_noise and space == "z":
        raise UsageError("--optimize-noise needs --space w or w+")
    if steps < 1:
        raise UsageError(f"--steps must be >= 1, got {steps}")
    files = input_files(inputs)
    stems = [p.stem for p in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise UsageError(f"several inputs are named {twice[0]}.*: their outputs would overwrite each other")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    distance = distance or FeatureDistance(device=g.device)
    gen = torch.Generator(device=g.device).manual_seed(int(seed))
    records = []
    with tqdm(total=steps * len(files), desc=f"projecting into {space}", unit="step", disable=not progress) as bar:
        for i in range(0, len(files), BATCH):
            chunk = files[i:i + BATCH]
            target = torch.stack([read_image(p, g.data_shape) for p in chunk]).to(g.device)
            y = g.labels(len(chunk), labels)
            y = y.to(g.device) if y is not None else None
            res = project(g.net, target, y=y, space=space, steps=steps, lr=lr, perceptual=distance,
                          perceptual_weight=perceptual_weight, optimize_noise=optimize_noise,
                          frame_every=max(1, steps // 50), generator=gen,
                          callback=lambda s, loss, n=len(chunk): bar.update(n))
            quality = psnr(res.image.cpu(), target.cpu())
            start = psnr(res.frames[0], target.cpu())  # the starting latent's image
            snaps = _pick(res.frames, frames)
            for j, p in enumerate(chunk):
                stem = out / p.stem
                tensors = {"latent": res.latent[j].detach().cpu().contiguous()}
                for k, plane in enumerate(res.noise or []):
                    tensors[f"noise.{k}"] = plane[j].cpu().contiguous()
                meta = {"space": space, "source": str(p), "checkpoint": str(g.checkpoint), "step": str(g.step),
                        "class": "" if y is None else str(int(y[j])), "steps": str(steps),
                        "psnr": f"{quality[j].item():.4f}", "ema": json.dumps(bool(g.ema))}
                save_file(tensors, str(stem.with_suffix(".safetensors")), metadata=meta)
                write_image(res.image[j].cpu(), out / f"{p.stem}-projected.png")
                save_progress(target[j].cpu(), [f[j] for f in snaps], out / f"{p.stem}-steps.png",
                              out / f"{p.stem}-steps.gif")
                records.append({"file": str(p), "latent": str(stem.with_suffix(".safetensors")),
                                "psnr": quality[j].item(), "start_psnr": start[j].item(), "loss": res.losses[-1]})
    return records


__all__ = ["check_projectable", "project_files", "save_progress"]
