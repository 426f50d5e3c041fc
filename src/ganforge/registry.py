"""One small validating registry for everything pluggable.

Losses, regularizers, networks, datasets, initialisations, optimizers, metrics and feature
extractors are each a :class:`Registry`. Adding one is one function or class plus one decorator::

    @LOSSES.register("hinge")
    def hinge(...): ...

Lookups of unknown names raise :class:`UnknownNameError` naming the closest valid name, and the
CLI's choices come from ``REGISTRY.keys()``.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Iterator

from .errors import ConfigError, UnknownNameError


def did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry:
    """A name -> object mapping that rejects duplicates and objects of the wrong kind."""

    def __init__(self, kind: str, check: Callable[[Any], bool] | None = None):
        self.kind = kind
        self._check = check
        self._items: dict[str, Any] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, *, help: str | None = None):
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.kind} names must be non-empty strings, got {name!r}")

        def deco(obj):
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            if self._check is not None and not self._check(obj):
                raise TypeError(f"{obj!r} cannot be registered as a {self.kind}")
            self._items[name] = obj
            own = getattr(obj, "help", None)  # entries that carry their own help text (e.g. datasets)
            doc = help if help is not None else own if isinstance(own, str) and own else \
                (obj.__doc__ or "").strip().splitlines()
            self._help[name] = doc if isinstance(doc, str) else (doc[0] if doc else "")
            return obj

        return deco

    def get(self, name: str):
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self._items)}; "
                f"choose from: {', '.join(sorted(self._items))}"
            ) from None

    def check(self, key: str, name: str) -> None:
        """Raise ConfigError unless ``name`` is registered (``key`` is the config key that holds it)."""
        if name not in self._items:
            raise ConfigError(f"{key}: unknown {self.kind} '{name}'{did_you_mean(name, self._items)}; "
                              f"choose from: {', '.join(sorted(self._items))}")

    def items(self):
        return [(k, self._items[k]) for k in self.keys()]

    def help(self, name: str) -> str:
        return self._help.get(name, "")

    def keys(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.keys()})"
