"""Data sources: toy mixtures, torchvision image datasets held in memory, folders of images.

``DATASETS`` maps a name to a factory ``factory(cfg) -> DataSource`` (``cfg`` is the whole
:class:`ganforge.config.Config`; factories read ``cfg.data`` and ``cfg.seed``). ``folder:PATH``
is handled by :func:`build_dataset`.
"""

from __future__ import annotations

from ..registry import Registry
from .base import DataError, DataSource, InMemorySource
from .toy import MIXTURES, Mixture, MixtureSource

DATASETS = Registry("dataset", check=callable)


def _toy_factory(name: str):
    def factory(cfg) -> DataSource:
        return MixtureSource(MIXTURES[name](), seed=cfg.seed)
    factory.__doc__ = MIXTURES[name].__doc__
    return factory


DATASETS.register("gauss1d", help="1-D mixture of two Gaussians (means -2, 2; std 0.5)")(_toy_factory("gauss1d"))
DATASETS.register("ring8", help="8 Gaussians on the unit circle, std 0.01 (PacGAN/VEEGAN)")(_toy_factory("ring8"))
DATASETS.register("grid25", help="25 Gaussians on {-4,-2,0,2,4}^2, std 0.05 (PacGAN/VEEGAN)")(_toy_factory("grid25"))

from . import images  # noqa: E402,F401  (registers the image datasets)
from . import stacked  # noqa: E402,F401  (registers stacked-fmnist)
from . import pairs  # noqa: E402,F401  (registers the image-to-image tasks: fmnist-edges, ...)


def build_dataset(cfg) -> DataSource:
    """The data source a config asks for (``cfg.data.name``: a registered name, folder:PATH,
    paired:PATH or unpaired:PATH)."""
    name = cfg.data.name
    if name.startswith("folder:"):
        return images.folder_source(cfg, name[len("folder:"):])
    if name.startswith("paired:"):
        return pairs.paired_folder_source(cfg, name[len("paired:"):])
    if name.startswith("unpaired:"):
        return pairs.unpaired_folder_source(cfg, name[len("unpaired:"):])
    return DATASETS.get(name)(cfg)


__all__ = ["DATASETS", "DataError", "DataSource", "InMemorySource", "Mixture", "MIXTURES",
           "MixtureSource", "build_dataset"]
