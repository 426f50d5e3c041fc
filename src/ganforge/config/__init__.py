"""Typed run configuration: the schema, named presets, and ``--set a.b=c`` overrides.

Resolution order: dataclass defaults -> preset -> YAML file -> ``--set`` overrides -> value checks.
Unknown keys and invalid values raise :class:`ConfigError` before anything is trained, naming
the key and the closest valid one. The package imports no subsystem; names that live in
registries are checked by their owners in :func:`ganforge.validation.validate`.
"""

from ..errors import ConfigError
from .overrides import apply_override, load_yaml, parse_override, resolve
from .presets import DEFAULT_PRESET, PRESETS, preset_config
from .sizes import SIZES, apply_size, describe_sizes, settle_size
from .ranges import AMP_MODES, LATENTS, SCHEDULES, check_values, choice, positive, weights
from .schema import (AugmentConfig, Config, DataConfig, EvalConfig, LossConfig, ModelConfig, OptimConfig,
                     TrainConfig, image_hw, short)

__all__ = ["AMP_MODES", "AugmentConfig", "Config", "ConfigError", "DEFAULT_PRESET", "DataConfig", "EvalConfig",
           "LATENTS", "LossConfig", "ModelConfig", "OptimConfig", "PRESETS", "SCHEDULES", "SIZES", "TrainConfig",
           "apply_override", "apply_size", "check_values", "choice", "describe_sizes", "image_hw", "load_yaml",
           "parse_override", "positive", "preset_config", "resolve", "settle_size", "short", "weights"]
