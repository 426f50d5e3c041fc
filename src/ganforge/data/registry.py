"""The one dataset registry: every data source ganforge can train on or evaluate against.

Each entry is a :class:`Dataset`: how to build the training source from a config, which task its
batches serve (:mod:`ganforge.tasks`), and what evaluation can read from it (a held-out split
for reference statistics, the class names, a mode counter). Entries marked ``scheme`` take a path
after a colon (``folder:PATH``, ``paired:PATH``, ``unpaired:PATH``).

Adding a dataset is one factory and one ``DATASETS.register(...)(Dataset(...))`` call; the CLI's
``ganforge list datasets``, config validation and ``eval --ref`` read this registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

from torch import Tensor

from ..config import image_hw
from ..errors import ConfigError, DataError
from ..registry import Registry, did_you_mean


class Split(NamedTuple):
    """A held-out split: ``images`` uint8 (N, C, H, W) (the targets of image-to-image data) or the
    samples of non-image data (float sequences (N, T, F)), ``labels`` int64 (N,) or None (classes,
    domains (N,) or attributes (N, K) float, sequence lengths), ``inputs`` uint8 (N', C', H', W') or
    None (image-to-image), ``content`` (N,) int64 or None: the classes of multi-domain images."""

    images: Tensor
    labels: Tensor | None = None
    inputs: Tensor | None = None
    content: Tensor | None = None


@dataclass(frozen=True)
class Dataset:
    """A registered data source."""

    build: Callable  # build(cfg, path) -> DataSource; path is "" for named (non-scheme) datasets
    task: str  # the task its batches serve (a key of ganforge.tasks.TASKS)
    help: str = ""
    scheme: bool = False  # takes a path: data.name = NAME:PATH
    any_shape: bool = False  # data.image_size may be HxW (non-square images)
    # split(name_or_path, split, *, root, image_size, channels, limit, download) -> Split; None: no held-out data
    split: Callable | None = None
    classes: tuple = ()  # class names, when the labels are classes
    modes: Callable | None = None  # modes(sample_fn(k, seed), n, seed) -> mode-coverage results
    # multi-domain data: canonical(images, domains) -> the images in the view whose content classes
    # Split.content gives and the content classifier knows; None: content is not measurable
    canonical: Callable | None = None
    content_features: str = "fmnist"  # the feature extractor whose classifier judges content

    @property
    def num_classes(self) -> int:
        return len(self.classes)


DATASETS = Registry("dataset", check=lambda o: isinstance(o, Dataset))


def parse_name(name: str) -> tuple[str, str]:
    """``"folder:/data/x"`` -> ("folder", "/data/x"); ``"fashion-mnist"`` -> ("fashion-mnist", "")."""
    head, sep, path = name.partition(":")
    if sep and head in DATASETS and DATASETS.get(head).scheme:
        return head, path
    return name, ""


def dataset(name: str) -> Dataset:
    """The registry entry for a ``data.name`` (scheme entries by their prefix)."""
    key, _ = parse_name(name)
    return DATASETS.get(key)


def choices() -> list[str]:
    return [f"{k}:PATH" if d.scheme else k for k, d in DATASETS.items()]


def validate_config(cfg) -> Dataset:
    """Check ``data.name`` (the data section's registry name); returns its entry."""
    key, path = parse_name(cfg.data.name)
    if key not in DATASETS:
        raise ConfigError(f"data.name: unknown value '{cfg.data.name}'{did_you_mean(cfg.data.name, choices())}; "
                          f"choose from: {', '.join(choices())}")
    entry = DATASETS.get(key)
    if entry.scheme and not path:
        raise ConfigError(f"data.name: {key}: needs a path, e.g. {key}:/data/images")
    h, w = image_hw(cfg.data.image_size)
    if h != w and not entry.any_shape:
        can = [f"{k}:PATH" if d.scheme else k for k, d in DATASETS.items() if d.any_shape]
        raise ConfigError(f"data.image_size={cfg.data.image_size}: {key} images are square (set one size); "
                          f"HxW sizes are for {', '.join(can)}")
    return entry


def build_dataset(cfg):
    """The training source a config asks for."""
    key, path = parse_name(cfg.data.name)
    return DATASETS.get(key).build(cfg, path)


def references() -> list[str]:
    """Names usable as evaluation references (``NAME:SPLIT``): the datasets with held-out splits."""
    return [k for k, d in DATASETS.items() if d.split is not None]


def load_reference(ref: str, *, root=None, image_size: int = 0, channels: int = 0, limit: int = 0,
                   download: bool = False) -> Split:
    """One split of a registered dataset, ``ref = "name:split"`` (split defaults to test)."""
    name, split = parse_ref(ref)
    key, path = parse_name(name)
    if key not in DATASETS or DATASETS.get(key).split is None:
        raise DataError(f"unknown reference '{name}'{did_you_mean(name, references())}; "
                        f"choose from: {', '.join(references())}")
    return DATASETS.get(key).split(path or key, split, root=root, image_size=image_size, channels=channels,
                                   limit=limit, download=download)


SPLITS = ("train", "test")


def parse_ref(ref: str) -> tuple[str, str]:
    """``"fashion-mnist:test"`` -> ("fashion-mnist", "test"); a bare name means its test split."""
    name, sep, split = ref.rpartition(":")
    if sep and split in SPLITS:
        return name, split
    if sep and name in DATASETS and not DATASETS.get(name).scheme:
        raise DataError(f"reference split must be train or test, got '{split}' in '{ref}'")
    return ref, "test"


__all__ = ["DATASETS", "Dataset", "Split", "build_dataset", "choices", "dataset", "load_reference", "parse_name",
           "parse_ref", "references", "validate_config"]
