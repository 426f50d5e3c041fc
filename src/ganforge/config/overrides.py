"""Resolution: preset -> YAML file -> ``--set a.b=c`` overrides -> value checks.

``resolve`` gives a :class:`Config` whose values are well-typed and in range; names that live in
registries (losses, nets, datasets, metrics, ...) are checked by the subsystems that own them, in
:func:`ganforge.validation.validate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .presets import DEFAULT_PRESET, preset_config
from .ranges import check_values
from .schema import Config, _merge, set_key
from .sizes import apply_size, explicit_keys, size_for_device

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


def apply_override(cfg: Config, text: str) -> None:
    set_key(cfg, *parse_override(text))


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
    parsed = [parse_override(o) for o in overrides]
    for path, value in parsed:
        set_key(cfg, path, value)
    cfg._explicit = explicit_keys(file_d, [p for p, _ in parsed])  # what model.size must not change
    check_values(cfg)
    if cfg.model.size == "auto" and cfg.train.device != "auto":  # the device is known: settle it now
        apply_size(cfg, size_for_device(cfg.train.device.split(":")[0]))
    elif cfg.model.size != "auto":
        apply_size(cfg, cfg.model.size)
    return cfg
