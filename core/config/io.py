"""Reading and writing the config tree: one coercion for YAML presets, ``--set`` and the form.

Owns introspection of the dataclasses (fields, types, choices), ``_coerce`` (the one place a raw value
becomes a field's type, with an error naming the key), ``--set`` parsing, and YAML in and out.
Checking the values against each other is ``core.config.checks``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from core.config.schema import SECTIONS, TOP_LEVEL, RunConfig
from core.errors import ConfigError

# --------------------------------------------------------------------------- introspection

def fields_of(obj: Any) -> tuple[dataclasses.Field, ...]:
    """The fields of a config dataclass (or an instance), in declaration order."""
    return dataclasses.fields(obj)


def section_fields(section: str) -> tuple[dataclasses.Field, ...]:
    """The dataclass fields of one section of RunConfig, in declaration order."""
    return fields_of(type(getattr(RunConfig(), section)))


def field_spec(section: str, name: str) -> dataclasses.Field:
    for f in section_fields(section):
        if f.name == name:
            return f
    raise ConfigError(f"unknown setting `{section}.{name}`", field=f"{section}.{name}")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_type_of(cls: type, name: str) -> Any:
    """The declared type of one field of a config dataclass."""
    return _hints(cls)[name]


def field_type(section: str, name: str) -> Any:
    cls = type(getattr(RunConfig(), section))
    return _hints(cls)[name]


def literal_choices(tp: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal`` type, else None."""
    return get_args(tp) if get_origin(tp) is Literal else None


# --------------------------------------------------------------------------- coercion

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """Turn a YAML / CLI / form value into the field's declared type, or raise ConfigError."""
    origin = get_origin(tp)
    choices = literal_choices(tp)
    if choices is not None:
        if {"on", "off"} <= set(choices) and (isinstance(value, bool) or str(value).strip().lower() in _TRUE | _FALSE):
            # a switch with an "auto": true / false (a preset written before it had one) read as on / off
            value = "on" if (value if isinstance(value, bool) else str(value).strip().lower() in _TRUE) else "off"
        if value not in choices:
            raise ConfigError(f"`{key}` must be one of {', '.join(map(str, choices))}, got {value!r}", field=key)
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"`{key}` must be true or false, got {value!r}", field=key)
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"`{key}` must be an integer, got {value!r}", field=key)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise ConfigError(f"`{key}` must be an integer, got {value!r}", field=key) from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"`{key}` must be a number, got {value!r}", field=key)
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"`{key}` must be a number, got {value!r}", field=key) from None
        if not math.isfinite(out):
            raise ConfigError(f"`{key}` must be a finite number, got {value!r}", field=key)
        return out
    if tp is str:
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            raise ConfigError(f"`{key}` must be text, got {value!r}", field=key)
        return str(value)
    if origin is list:
        (item_tp,) = get_args(tp)
        if value is None or value == "":
            return []
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{key}` must be a list, got {value!r}", field=key)
        return [_coerce(key, item_tp, v) for v in value]
    if origin is dict:
        if value is None or value == "":
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"`{key}` must be a mapping, got {value!r}", field=key)
        return {str(k): str(v) for k, v in value.items()}
    if origin in (Union, types.UnionType):  # str | list[str]: "all-linear" or a list
        if isinstance(value, str) and "," not in value:
            return value.strip()
        return _coerce(key, list[str], value)
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in this file, not user input


def set_field(obj: Any, name: str, value: Any, *, key: str | None = None) -> None:
    """Set one field of any config dataclass (DecodingConfig, MergeConfig, a section) from a raw value.

    Args:
        obj: the dataclass instance.
        name: the field name.
        value: a YAML / CLI / form value, coerced to the declared type.
        key: how errors name the field (default: ``name``), e.g. ``--max-new-tokens``.
    Raises:
        ConfigError: an unknown name or a value of the wrong type.
    """
    hints = _hints(type(obj))
    if name not in hints or name not in {f.name for f in fields_of(obj)}:
        raise ConfigError(f"unknown setting `{key or name}`", field=key or name)
    setattr(obj, name, _coerce(key or name, hints[name], value))


def set_value(cfg: RunConfig, dotted: str, value: Any) -> None:
    """Set ``section.field`` (or a top-level key) from a raw value, coerced to the declared type."""
    if dotted in TOP_LEVEL:
        setattr(cfg, dotted, _coerce(dotted, str, value))
        return
    section, _, name = dotted.partition(".")
    if section not in SECTIONS or not name:
        raise ConfigError(f"unknown setting `{dotted}` (sections: {', '.join(SECTIONS)})", field=dotted)
    field_spec(section, name)  # raises on an unknown name
    setattr(getattr(cfg, section), name, _coerce(dotted, field_type(section, name), value))


def parse_set(expr: str) -> tuple[str, Any]:
    """``"lora.r=8"`` → ``("lora.r", 8)``; the value is read as YAML so lists and bools work."""
    if "=" not in expr:
        raise ConfigError(f"--set expects section.field=value, got {expr!r}", field=expr)
    key, _, raw = expr.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def from_dict(data: dict | None, *, base: RunConfig | None = None, source: str = "config") -> RunConfig:
    """Build a RunConfig from a nested mapping (a preset), rejecting unknown keys."""
    cfg = base if base is not None else RunConfig()
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}", field=source)
    errors = []
    for top, value in data.items():
        if top in TOP_LEVEL:
            set_value(cfg, top, value)
            continue
        if top not in SECTIONS:
            errors.append(f"unknown preset key `{top}` in {source} (allowed: {', '.join(SECTIONS + TOP_LEVEL)})")
            continue
        if value is None:
            continue
        if not isinstance(value, dict):
            errors.append(f"`{top}` in {source} must be a mapping, got {value!r}")
            continue
        for name, v in value.items():
            try:
                set_value(cfg, f"{top}.{name}", v)
            except ConfigError as e:
                errors.append(f"{e} in {source}")
    if errors:
        raise ConfigError("; ".join(errors), field=source)
    return cfg


def to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def diff_from_default(cfg: RunConfig) -> dict:
    """Only what differs from the defaults: what a saved preset holds."""
    full, default = to_dict(cfg), to_dict(RunConfig())
    out: dict = {}
    for key in TOP_LEVEL:
        if full[key] != default[key]:
            out[key] = full[key]
    for section in SECTIONS:
        delta = {k: v for k, v in full[section].items() if v != default[section][k]}
        if delta:
            out[section] = delta
    return out


def load_yaml(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load a preset file and apply ``--set`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"preset file not found: {path}", field=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read preset {path}: {e}", field=str(path)) from None
    cfg = from_dict(data, source=path.name)
    for expr in overrides or []:
        set_value(cfg, *parse_set(expr))
    return cfg


def dump_yaml(cfg: RunConfig, *, only_changes: bool = False) -> str:
    data = diff_from_default(cfg) if only_changes else to_dict(cfg)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


