"""Tasks as registered objects: what a run learns and how it is trained, previewed, used and judged.

- ``generate``: noise -> sample, with or without class labels (:mod:`.generate`);
- ``paired``: paired image-to-image translation (pix2pix, super-resolution, deblurring);
- ``unpaired``: unpaired translation between two domains (CycleGAN) (:mod:`.translate`);
- ``sequence``: noise -> multivariate time series (:mod:`.sequence`);
- ``semi``: semi-supervised classification, D is the product (:mod:`.semi`);
- ``multidomain``: translation to any of K domains with one generator (StarGAN) (:mod:`.multidomain`).

A run's task is the one its net family serves; its dataset must serve the same task. Adding a
task is one :class:`~.base.Task` subclass and one ``TASKS.register`` line.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..registry import Registry
from .base import Task
from .generate import GenerateTask, validate_eval
from .multidomain import MultiDomainTask
from .semi import SemiTask
from .sequence import SequenceTask
from .translate import PairedTask, UnpairedTask

TASKS = Registry("task", check=lambda o: isinstance(o, Task))


def _register(name: str, task: Task) -> None:
    task.name = name
    TASKS.register(name, help=task.help)(task)


_register("generate", GenerateTask())
_register("paired", PairedTask())
_register("unpaired", UnpairedTask())
_register("sequence", SequenceTask())
_register("semi", SemiTask())
_register("multidomain", MultiDomainTask())


def task_of(arch: str) -> Task:
    """The task a net family serves."""
    from ..nets import NETS
    return TASKS.get(NETS.get(arch).task)


def validate_config(cfg) -> Task:
    """The run's task: the net family's, which the dataset must serve too; then the task's own checks."""
    from ..data import DATASETS, dataset
    from ..nets import NETS
    task = task_of(cfg.model.arch)
    entry = dataset(cfg.data.name)
    if entry.task != task.name:
        fits = [k for k, d in DATASETS.items() if d.task == task.name]
        archs = [k for k, f in NETS.items() if f.task == entry.task]
        raise ConfigError(f"model.arch '{cfg.model.arch}' trains {task.help} models, but data.name "
                          f"'{cfg.data.name}' serves {TASKS.get(entry.task).help} data; use a dataset such as "
                          f"{', '.join(fits)} or a net family such as {', '.join(archs)}")
    task.validate(cfg)
    validate_eval(cfg)
    return task


def loss_terms(cfg) -> dict[str, str]:
    """The loss terms a run may weight: the registered G-side terms and its task's own."""
    from ..objectives import TERMS
    return {**{k: TERMS.help(k) for k in TERMS.keys()}, **task_of(cfg.model.arch).own_terms}


__all__ = ["TASKS", "Task", "GenerateTask", "PairedTask", "UnpairedTask", "SequenceTask", "SemiTask",
           "MultiDomainTask", "task_of", "validate_config", "loss_terms"]
