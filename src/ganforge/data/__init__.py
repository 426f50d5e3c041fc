"""Data sources: toy mixtures, torchvision image datasets held in memory, folders of images,
image-to-image pairs, and stacked Fashion-MNIST.

Every source is an entry of the one registry :data:`DATASETS` (:mod:`.registry`): how to build it,
the task it serves, and its held-out split for evaluation.
"""

from __future__ import annotations

from ..errors import DataError
# each module registers its datasets
from . import images, folders, folder_cache, labelled, multidomain, pair_folders, pairs, sequences, stacked, toy  # noqa: F401
from .base import DataSource, InMemorySource
from .registry import (DATASETS, Dataset, Split, build_dataset, dataset, load_reference, parse_name, parse_ref,
                       references, validate_config)
from .toy import MIXTURES, Mixture, MixtureSource

__all__ = ["DATASETS", "DataError", "DataSource", "Dataset", "InMemorySource", "Mixture", "MIXTURES",
           "MixtureSource", "Split", "build_dataset", "dataset", "load_reference", "parse_name", "parse_ref",
           "references", "validate_config"]
