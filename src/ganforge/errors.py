"""Every error a user can cause or fix, in one leaf module (it imports nothing from ganforge).

The command line prints any :class:`UserError` as one line (``error: ...``) and exits 2; anything
else is a bug and keeps its traceback. Library code raises the most specific class.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the message says what would be valid."""


class ConfigError(UserError, ValueError):
    """A configuration mistake; the message names the key and what would be valid."""


class UnknownNameError(UserError, KeyError, ValueError):
    """A name that is not in a registry (the message names the closest valid one)."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0]) if self.args else ""


class DataError(UserError, ValueError):
    """A data problem the user can fix (missing files, empty folder, bad name)."""


class RunDirError(UserError, ValueError):
    """A path that is not a usable run folder."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be used (missing, damaged, or from another model)."""


class UsageError(UserError, ValueError):
    """A request a model cannot serve (wrong kind of model, bad class label)."""


class EvalError(UserError, ValueError):
    """A bad evaluation request (unknown metric, too few samples, bad reference)."""


class WeightsError(UserError, ValueError):
    """Feature-extractor weights that are missing or fail their checksum."""


class TrainingDiverged(UserError, RuntimeError):
    """NaN or Inf reached the losses or the weights (and no rollback could save the run)."""


__all__ = ["UserError", "ConfigError", "UnknownNameError", "DataError", "RunDirError", "CheckpointError",
           "UsageError", "EvalError", "WeightsError", "TrainingDiverged"]
