"""Resolution: preset -> YAML file -> ``--set a.b=c`` overrides -> value checks.

``resolve`` gives a :class:`Config` whose values are well-typed and in range; names that live in
registries (losses, nets, datasets, metrics, ...) are checked by the subsystems that own them, in
:func:`ganforge.validation.validate`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..registry import did_you_mean
from .presets import DEFAULT_PRESET, preset_config
from .ranges import check_values
from .schema import Config, _coerce, _field_types, _is_dataclass_instance, _merge

MAX_CONFIG_BYTES = 1 << 20  # a config file is a few KB; anything past 1 MB is refused unread
MAX_ALIASES = 64  # YAML aliases (*name) per file: enough for any config, too few for a "billion laughs"


class _ConfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses files with more than MAX_ALIASES aliases, before building them."""

    aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise ConfigError(f"{getattr(self, 'path', 'the config')} uses more than {MAX_ALIASES} YAML aliases; "
                                  f"refused (a config never needs that many; this looks like a YAML bomb)")
        return super().compose_node(parent, index)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b=c`` into (["a", "b"], value) with YAML scalars/lists (``1e-4``, ``[0, 0.9]``)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            pass
    return key.split("."), value


def _other_section(cfg: Config, key: str) -> str:
    """' (did you mean 'optim.lr_d'?)' when ``key`` exists in another section."""
    for section in dataclasses.fields(cfg):
        sub = getattr(cfg, section.name)
        if _is_dataclass_instance(sub) and key in _field_types(sub):
            return f" (did you mean '{section.name}.{key}'?)"
    return ""


def apply_override(cfg: Config, text: str) -> None:
    path, value = parse_override(text)
    obj: Any = cfg
    for i, part in enumerate(path):
        full = ".".join(path[: i + 1])
        last = i == len(path) - 1
        if isinstance(obj, dict):  # free-form mapping fields (model.g, loss.penalties, ...)
            if last:
                obj[part] = value
            else:
                obj = obj.setdefault(part, {})
                if not isinstance(obj, dict):
                    raise ConfigError(f"{full} is not a mapping")
            continue
        types = _field_types(obj)
        if part not in types:
            hint = _other_section(cfg, part) or did_you_mean(part, types)  # an exact key elsewhere first
            raise ConfigError(f"unknown config key '{full}'{hint}; valid keys here: {', '.join(types)}")
        if last:
            current = getattr(obj, part)
            if _is_dataclass_instance(current):
                _merge(current, value, full + ".")
            else:
                setattr(obj, part, _coerce(value, types[part], full))
        else:
            obj = getattr(obj, part)
            if not (_is_dataclass_instance(obj) or isinstance(obj, dict)):
                raise ConfigError(f"{full} is a value, not a section")


def load_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p} is {size:,} bytes; a config file must be under {MAX_CONFIG_BYTES:,}")
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {p}: {getattr(e, 'strerror', None) or e}") from None
    loader = _ConfigLoader(text)
    loader.path = str(p)
    try:
        d = loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{p} is not valid YAML{where}: {problem}") from None
    finally:
        loader.dispose()
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: a config file must hold a mapping")
    return d


def resolve(preset: str | None = None, file: str | Path | None = None,
            overrides: list[str] | tuple = ()) -> Config:
    """Build a validated config from a preset, an optional YAML file and ``a.b=c`` overrides."""
    file_d = load_yaml(file) if file else {}
    preset = preset or file_d.get("preset") or DEFAULT_PRESET
    cfg = preset_config(preset)
    if file_d:
        _merge(cfg, file_d, "")
        cfg.preset = preset
    for o in overrides:
        apply_override(cfg, o)
    check_values(cfg)
    return cfg
