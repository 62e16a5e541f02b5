"""Config values from YAML and ``--set`` text: type checks with one-line errors, did-you-mean keys.

Kept apart from the schema and from how a config is assembled because the rules for reading loose
YAML values (``3e-5`` read as a string, ints for floats, ``Literal`` choices) are the same for every
section and for search spaces (`tfbert.search.space`).
"""
from __future__ import annotations

import difflib
import math
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from tfbert.errors import ConfigError


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check `value` against `annotation`, converting where YAML is loose (int for float)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return coerce(value, inner[0], key)
        for candidate in inner:
            try:
                return coerce(value, candidate, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key!r}: {value!r} is not allowed; expected {describe(inner)}")
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"config key {key!r}: {value!r} is not allowed; expected one of {allowed}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        return [coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):
            # YAML 1.1 reads 3e-5 (no dot) as a string; it is the usual way to write a learning rate.
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
        return str(value)
    return value


def describe(annotations: list[Any]) -> str:
    """`int`, `Literal["epoch"]` -> "an integer or 'epoch'"."""
    words = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    parts = []
    for annotation in annotations:
        if typing.get_origin(annotation) is Literal:
            parts += [repr(a) for a in typing.get_args(annotation)]
        elif typing.get_origin(annotation) is list:
            inner = words.get(typing.get_args(annotation)[0], "value").split(" ", 1)[-1]
            parts.append(f"a list of {inner}s")
        else:
            parts.append(words.get(annotation, str(annotation)))
    return " or ".join(parts)


def unknown_key(key: str, valid: list[str]) -> ConfigError:
    """An unknown-key error naming the closest valid key and listing the valid ones."""
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, valid, n=1) or [v for v in valid if name in v]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint}; valid keys here: {', '.join(valid)}")


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``a.b=value`` and parse the value as YAML (so ``3e-5``, ``true``, ``[1, 2]`` work)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. optimizer.learning_rate=3e-5")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads 3e-5 as a string; numbers in scientific notation are common here.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in "e.") else value
        except ValueError:
            pass
    return key.strip(), value


def flatten_keys(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as dotted keys: ``{"training": {"seed": 1}}`` -> ``{"training.seed": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten_keys(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def nest(key: str, value: Any) -> dict[str, Any]:
    """``("a.b", 1)`` -> ``{"a": {"b": 1}}``."""
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def read_yaml(path: Path) -> Any:
    """The YAML document at `path`; syntax and encoding errors name the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not valid UTF-8; re-encode the file as UTF-8") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        what = f"{context}: {problem}" if context else problem
        if mark is None:
            raise ConfigError(f"{path}: not valid YAML ({what})") from None
        raise ConfigError(f"{path}, line {mark.line + 1}: not valid YAML ({what} at column {mark.column + 1})") from None


__all__ = ["coerce", "describe", "flatten_keys", "nest", "parse_override", "read_yaml", "unknown_key"]
