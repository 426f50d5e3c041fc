"""Image datasets held in memory as uint8 tensors (placeholder: being written)."""

from __future__ import annotations

from .base import DataError


def folder_source(cfg, path: str):
    raise DataError("folder datasets are not available yet")
