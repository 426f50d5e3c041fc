"""What a task is: what a run learns, and how it is trained, previewed, used and judged.

A :class:`Task` owns

- its **objective** (what the D and G phases minimise) and the loss terms that objective reads;
- its **previews**: the fixed inputs of every sample picture of a run, and how a picture is made;
- its **inference verbs** (``sample``, ``translate``, ...) and how the generator is called for them;
- its **evaluation plan**: the default metrics, the default reference, and the images that the
  feature metrics compare with the reference.

Net families and datasets declare the task they serve (``NetFamily.task``, ``Dataset.task``);
validation asks the task. Nothing outside the task modules branches on what kind of run it is.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from ..errors import ConfigError, UsageError


class Task:
    """Base class of the registered tasks (see :data:`ganforge.tasks.TASKS`)."""

    name = ""  # the registry key, set at registration
    help = ""
    objective: type  # the Objective class that trains it
    own_terms: dict[str, str] = {}  # loss terms the objective reads itself: name -> help
    verbs: tuple[str, ...] = ()  # inference commands it serves: sample, translate, ...
    default_metrics = "fid"  # `ganforge eval` without --metrics
    takes_images = False  # G's input is an image (image-to-image)
    two_way = False  # G translates both ways (G.ab / G.ba)
    offers: tuple[str, ...] = ()  # capabilities its models offer metrics beyond those read off the model

    # -- configuration -----------------------------------------------------------------------
    def validate(self, cfg) -> None:
        """Task-specific checks of a config whose net family and dataset serve this task."""

    def uses_labels(self, cfg) -> bool:
        """Whether the batches' y reaches the nets."""
        return False

    def build_objective(self, cfg, *, generator: torch.Generator, device):
        return self.objective(cfg, generator=generator, device=device, use_y=self.uses_labels(cfg))

    # -- previews ----------------------------------------------------------------------------
    def fixed_inputs(self, data, cfg, seed: int) -> dict:
        """CPU tensors that every sample picture of a run is made from."""
        raise NotImplementedError

    def preview(self, net, fixed: dict, device) -> tuple[Tensor, int | None, Tensor | None]:
        """``(images or points, images per row, real points to draw behind them or None)``."""
        raise NotImplementedError

    def save_samples(self, x: Tensor, path, real=None, nrow: int | None = None) -> None:
        """Write outputs ``x`` as a picture at ``path`` (``real``: what :meth:`preview` returned beside them)."""
        from ..viz import save_samples
        save_samples(x, path, real, nrow=nrow)

    # -- inference -----------------------------------------------------------------------------
    def require(self, verb: str) -> None:
        """Raise UsageError when this task's models do not serve ``verb``."""
        if verb not in self.verbs:
            raise UsageError(f"this is a {self.help} model: it serves `{'`, `'.join(self.verbs)}`, not `{verb}`")

    def generate(self, net, z: Tensor | None, y: Tensor | None, **options) -> Tensor:
        raise UsageError(f"this is a {self.help} model: it does not generate from noise")

    def parse_direction(self, model, direction):
        """What :meth:`translate` takes for a user's direction (``--direction`` / ``--to``)."""
        return direction

    def translate(self, net, x: Tensor, direction: str = "ab") -> Tensor:
        raise UsageError(f"this is a {self.help} model: it does not translate images")

    def input_shape(self, args: dict, direction: str = "ab") -> tuple:
        """(C, H, W) that G takes as its input image, from G's constructor arguments."""
        raise UsageError("this model does not take input images")

    # -- evaluation ----------------------------------------------------------------------------
    def default_ref(self, cfg) -> str:
        return f"{cfg.data.name}:test"

    def reference_options(self, cfg, ref: str) -> dict:
        """Extra arguments of ``load_reference`` (``image_size``, ``channels``) for reference ``ref``."""
        return {}

    def metrics_for(self, model) -> str:
        """The metrics `ganforge eval` computes when none are asked for."""
        return self.default_metrics

    def outputs(self, ctx) -> Iterator[Tensor]:
        """Batches of generated images (in [-1, 1]) that feature metrics compare with the reference."""
        raise NotImplementedError


def check_z(cfg, *, allow_zero: bool) -> None:
    if cfg.model.z_dim <= 0 and not allow_zero:
        raise ConfigError(f"model.z_dim: must be > 0, got {cfg.model.z_dim}")


__all__ = ["Task", "check_z"]
