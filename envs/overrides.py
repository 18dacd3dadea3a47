"""Dotted-key overrides for nested dataclass configs, with errors that name the bad key."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping


class ConfigError(ValueError):
    """A config key that does not exist, or a value of the wrong type."""


def apply_overrides(cfg: Any, overrides: Mapping[str, Any] | None) -> Any:
    """Return a copy of dataclass `cfg` with {"a.b.c": value} overrides applied.

    Nested mappings are allowed too ({"a": {"b": 1}}). Dict-valued fields (e.g. reward terms)
    accept overrides of their existing entries' fields, such as "rewards.terms.torques.weight".
    """
    for key, value in _flatten(overrides or {}).items():
        cfg = _set(cfg, key.split("."), value, key)
    return cfg


def _flatten(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, full + "."))
        else:
            flat[full] = value
    return flat


def _set(obj: Any, path: list[str], value: Any, full_key: str) -> Any:
    head, rest = path[0], path[1:]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = [f.name for f in dataclasses.fields(obj)]
        if head not in names:
            raise ConfigError(f"unknown config key {full_key!r}: {type(obj).__name__} has no field "
                              f"{head!r} (fields: {', '.join(names)})")
        current = getattr(obj, head)
        if rest:
            new = _set(current, rest, value, full_key)
        else:
            hint = typing.get_type_hints(type(obj)).get(head)
            new = _coerce(value, hint, current, full_key)
        return dataclasses.replace(obj, **{head: new})
    if isinstance(obj, dict):
        if head not in obj:
            raise ConfigError(f"unknown config key {full_key!r}: no entry {head!r} "
                              f"(entries: {', '.join(map(str, obj))})")
        copy = dict(obj)
        copy[head] = _set(obj[head], rest, value, full_key) if rest else value
        return copy
    raise ConfigError(f"config key {full_key!r} goes below a plain value ({type(obj).__name__})")


def _coerce(value: Any, hint: Any, current: Any, key: str) -> Any:
    """Check `value` against the field's annotation; convert lists to tuples where declared."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, current, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key!r}: {value!r} does not match {hint}")
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"config key {key!r}: expected None, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a sequence, got {value!r}")
        args = typing.get_args(hint)
        if args and args[-1] is not Ellipsis and len(args) != len(value):
            raise ConfigError(f"config key {key!r}: expected {len(args)} values, got {len(value)}")
        return tuple(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, bool, str) and type(value) is not hint:
        raise ConfigError(f"config key {key!r}: expected {hint.__name__}, got {value!r}")
    if typing.get_origin(hint) is typing.Literal and value not in typing.get_args(hint):
        raise ConfigError(f"config key {key!r}: {value!r} is not one of {typing.get_args(hint)}")
    return value
