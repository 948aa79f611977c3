"""Typed settings from plain mappings: the one parser every config section goes through.

A section is a frozen dataclass. Parsing is strict: an unknown key, a missing required key or a value of the
wrong type raises `ConfigError` with a one-line message that names the offending key by its dotted path
(`training.finetune.learning_rate: expected a number, got 'fast'`). The sections themselves live beside the
step that reads them (`components/transform/settings.py`, `components/trainer/settings.py`) and the whole
run's config in `pipeline/config.py`; a TFX module file rebuilds its sections here from `custom_config`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar

Section = TypeVar("Section")


class ConfigError(ValueError):
    """A configuration file that cannot be used as written."""


def asdict(section: Any) -> dict[str, Any]:
    return dataclasses.asdict(section)


def section_from_dict(cls: type[Section], raw: dict[str, Any], where: str = "") -> Section:
    """A config section (a frozen dataclass) from its dict form: a YAML mapping, or one carried in custom_config."""
    return _build(cls, raw, where)


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {_show(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(where, unknown[0])}: unknown key (known: {', '.join(sorted(fields))})")
    values = {}
    for name, field in fields.items():
        key_path = _join(where, name)
        if name not in raw:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key_path}: required key is missing")
            continue
        values[name] = _coerce(hints[name], raw[name], key_path)
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {', '.join(map(str, args))}, got {_show(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (arg for arg in args if arg is not type(None)):
            try:
                return _coerce(option, value, where)
            except ConfigError:
                continue
        names = " or ".join(getattr(arg, "__name__", str(arg)) for arg in args if arg is not type(None))
        raise ConfigError(f"{where}: expected {names}, got {_show(value)}")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_show(value)}")
        key_hint, value_hint = args
        return {
            _coerce(key_hint, key, where): _coerce(value_hint, item, _join(where, str(key)))
            for key, item in value.items()
        }
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_show(value)}")
        item_hint = args[0]
        if dataclasses.is_dataclass(item_hint):
            return tuple(
                _build(item_hint, item, _join(where, _item_name(item, index))) for index, item in enumerate(value)
            )
        return tuple(_coerce(item_hint, item, f"{where}[{index}]") for index, item in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {_show(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {_show(value)}")
        return value
    if hint is float:
        # YAML reads `1e-4` (no dot) as a string; accept it, since people write learning rates that way.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {_show(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_show(value)}")
        return value
    raise TypeError(f"unsupported config type {hint!r} at {where}")


def _item_name(item: Any, index: int) -> str:
    return str(item["name"]) if isinstance(item, dict) and "name" in item else f"[{index}]"


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    return "nothing" if value is None else repr(value)
