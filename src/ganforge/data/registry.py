"""The one dataset registry: every data source ganforge can train on or evaluate against.

Each entry is a :class:`Dataset`: how to build the training source from a config, which task its
batches serve (:mod:`ganforge.tasks`), and what evaluation can read from it (a held-out split
for reference statistics, the class names, a mode counter). Entries marked ``scheme`` take a path
after a colon (``folder:PATH``, ``paired:PATH``, ``unpaired:PATH``).

Adding a dataset is one factory and one ``DATASETS.register(...)(Dataset(...))`` call; the CLI's
``ganforge list datasets``, config validation and ``eval --ref`` read this registry.
"""

from __future__ import annotations

import re
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
    scheme: bool = False  # takes an argument after a colon: data.name = NAME:PATH
    scheme_arg: str = "PATH"  # what that argument is, as listings show it (semi: NAME, a dataset name)
    any_shape: bool = False  # data.image_size may be HxW (non-square images)
    # split(name_or_path, split, *, root, image_size, channels, limit, download) -> Split; None: no held-out data
    split: Callable | None = None
    classes: tuple = ()  # class names, when the labels are classes
    modes: Callable | None = None  # modes(sample_fn(k, seed), n, seed) -> mode-coverage results
    # multi-domain data: canonical(images, domains) -> the images in the view whose content classes
    # Split.content gives and the content classifier knows; None: content is not measurable
    canonical: Callable | None = None
    content_features: str = "fmnist"  # the feature extractor whose classifier judges content
    subsets: bool = False  # data.classes / a reference's @C,C... can keep only some of its classes


    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def shown(self, key: str) -> str:
        """How listings name this dataset: ``key``, or ``key:PATH`` (``key:NAME``...) for a scheme."""
        return f"{key}:{self.scheme_arg}" if self.scheme else key


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
    return [d.shown(k) for k, d in DATASETS.items()]


def validate_config(cfg) -> Dataset:
    """Check ``data.name`` (the data section's registry name); returns its entry."""
    key, path = parse_name(cfg.data.name)
    if key not in DATASETS:
        raise ConfigError(f"data.name: unknown value '{cfg.data.name}'{did_you_mean(cfg.data.name, choices())}; "
                          f"choose from: {', '.join(choices())}")
    entry = DATASETS.get(key)
    if entry.scheme and not path:
        raise ConfigError(f"data.name: {key}: needs a path, e.g. {key}:/data/images")
    if cfg.data.classes:
        try:
            check_classes(cfg.data.name, cfg.data.classes)
        except DataError as e:
            raise ConfigError(f"data.classes: {e}") from None
        if cfg.model.conditional:
            raise ConfigError("data.classes: not with model.conditional=true (the model would still be asked "
                              f"for all {entry.num_classes} classes)")
    h, w = image_hw(cfg.data.image_size)
    if h != w and not entry.any_shape:
        can = [f"{k}:PATH" if d.scheme else k for k, d in DATASETS.items() if d.any_shape]
        raise ConfigError(f"data.image_size={cfg.data.image_size}: {key} images are square (set one size); "
                          f"HxW sizes are for {', '.join(can)}")
    return entry


# -- keeping some classes (data.classes, references NAME:SPLIT@C,C...) -------------------------------

CLASSES_SEP = "@"  # fashion-mnist:test@5,7 = the test images of classes 5 and 7


def subset_datasets() -> list[str]:
    return [k for k, d in DATASETS.items() if d.subsets]


def check_classes(name: str, classes) -> tuple[int, ...]:
    """``classes`` as a tuple after checking that dataset ``name`` can keep them (a DataError if not)."""
    key, _ = parse_name(name)
    entry = DATASETS.get(key) if key in DATASETS else None
    if entry is None or not entry.subsets:
        raise DataError(f"'{name}' has no classes to choose from; classes can be chosen in: "
                        f"{', '.join(subset_datasets())}")
    k = entry.num_classes
    out = []
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < k:
            raise DataError(f"class {c!r} is not a class index of {name} (0..{k - 1})")
        if c in out:
            raise DataError(f"class {c} is given twice")
        out.append(c)
    return tuple(out)


def split_classes(ref: str) -> tuple[str, tuple[int, ...]]:
    """``"fashion-mnist:test@5,7"`` -> ("fashion-mnist:test", (5, 7)); no class list -> (ref, ()).
    An ``@`` in a folder path is part of the path; after a named dataset it must start a class list."""
    head, sep, tail = ref.rpartition(CLASSES_SEP)
    if not sep:
        return ref, ()
    key, _ = parse_name(head)
    if key in DATASETS and DATASETS.get(key).scheme:  # NAME:PATH: the @ belongs to the path
        return ref, ()
    if re.fullmatch(r"\s*-?\d+(\s*,\s*-?\d+)*\s*", tail):
        return head, tuple(int(c) for c in tail.split(","))
    base, colon, split = head.rpartition(":")
    base = base if colon and split in SPLITS else head
    if base in DATASETS and not DATASETS.get(base).scheme:
        raise DataError(f"reference '{ref}': the classes after '{CLASSES_SEP}' must be comma-separated "
                        f"class indices, e.g. {base}:test{CLASSES_SEP}5,7")
    return ref, ()


def with_classes(ref: str, classes) -> str:
    """``ref`` restricted to ``classes`` (unchanged when there are none)."""
    return f"{ref}{CLASSES_SEP}{','.join(map(str, classes))}" if classes else ref


def class_index(labels: Tensor | None, classes, what: str) -> Tensor:
    """Indices (increasing) of the samples whose label is one of ``classes``; a DataError when there
    are no class labels or no such sample."""
    import torch
    if labels is None or labels.dim() != 1 or labels.is_floating_point():
        raise DataError(f"{what} has no class labels to choose classes by")
    idx = torch.nonzero(torch.isin(labels, torch.tensor(list(classes), dtype=labels.dtype))).flatten()
    if len(idx) == 0:
        raise DataError(f"{what} has no samples of classes {list(classes)}")
    return idx


def build_dataset(cfg):
    """The training source a config asks for."""
    key, path = parse_name(cfg.data.name)
    return DATASETS.get(key).build(cfg, path)


def references() -> list[str]:
    """Names usable as evaluation references (``NAME:SPLIT``): the datasets with held-out splits."""
    return [k for k, d in DATASETS.items() if d.split is not None]


def load_reference(ref: str, *, root=None, image_size: int = 0, channels: int = 0, limit: int = 0,
                   download: bool = False) -> Split:
    """One split of a registered dataset, ``ref = "name:split"`` (split defaults to test);
    ``"name:split@5,7"`` keeps the images of classes 5 and 7 (``limit`` applies after that)."""
    name, split = parse_ref(ref)
    classes = split_classes(ref)[1]
    key, path = parse_name(name)
    if key not in DATASETS or DATASETS.get(key).split is None:
        raise DataError(f"unknown reference '{name}'{did_you_mean(name, references())}; "
                        f"choose from: {', '.join(references())}")
    if classes:
        try:
            check_classes(name, classes)
        except DataError as e:
            raise DataError(f"reference '{ref}': {e}") from None
    out = DATASETS.get(key).split(path or key, split, root=root, image_size=image_size, channels=channels,
                                  limit=0 if classes else limit, download=download)
    if classes:
        idx = class_index(out.labels, classes, f"reference '{ref}'")[:limit or None]
        out = Split(*(None if t is None else t[idx] for t in out))
    return out


SPLITS = ("train", "test")


def parse_ref(ref: str) -> tuple[str, str]:
    """``"fashion-mnist:test"`` -> ("fashion-mnist", "test"); a bare name means its test split;
    a class list ``@5,7`` at the end is left out (see :func:`split_classes`)."""
    ref = split_classes(ref)[0]
    name, sep, split = ref.rpartition(":")
    if sep and split in SPLITS:
        return name, split
    if sep and name in DATASETS and not DATASETS.get(name).scheme:
        raise DataError(f"reference split must be train or test, got '{split}' in '{ref}'")
    return ref, "test"


__all__ = ["CLASSES_SEP", "DATASETS", "Dataset", "Split", "build_dataset", "check_classes", "choices", "class_index",
           "dataset", "load_reference", "parse_name", "parse_ref", "references", "split_classes", "subset_datasets",
           "validate_config", "with_classes"]
