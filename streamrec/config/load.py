"""Load a TOML file into :class:`RunConfig`, rejecting unknown keys and ill-typed values with
the key's full name (``configs/door.toml: tracker.max_missed_s: expected a number, got "soon"``).
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any

from streamrec.config.model import RunConfig, SourceConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ConfigError", "load_config", "parse_config"]


class ConfigError(ValueError):
    """A configuration problem; the message names the file and the key."""


_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", item, item_type) for i, item in enumerate(value)]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, annotation) or (annotation is not bool and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {_TYPE_NAMES.get(annotation, annotation)}, got {value!r}")
    return value


def _section(name: str, cls: type, table: Any) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{name}: expected a table of settings")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key not in known:
            raise ConfigError(f"unknown key '{name}.{key}' (known: {', '.join(sorted(known))})")
    values = {key: _coerce(f"{name}.{key}", value, hints[key]) for key, value in table.items()}
    section = cls(**values)
    try:
        section.check()
    except ValueError as exc:
        raise ConfigError(f"{name}.{exc}") from None
    return section


def parse_config(data: dict[str, Any]) -> RunConfig:
    """Build a :class:`RunConfig` from parsed TOML."""
    hints = typing.get_type_hints(RunConfig)
    known = {f.name for f in dataclasses.fields(RunConfig)}
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown section '{key}' (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for key, table in data.items():
        if key == "sources":
            if not isinstance(table, list):
                raise ConfigError("sources: expected [[sources]] tables")
            values[key] = [_section(f"sources[{i}]", SourceConfig, t) for i, t in enumerate(table)]
        else:
            values[key] = _section(key, hints[key], table)
    return RunConfig(**values)


def load_config(path: Path) -> RunConfig:
    """Read and validate the TOML file at ``path``."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
