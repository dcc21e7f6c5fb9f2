"""Typed configs: dataclasses loaded from YAML, with dotted ``key=value`` overrides.

Every command of the project builds its settings through :func:`load_config`, so a typo in a YAML
file or on the command line fails the same way everywhere: a :class:`ConfigError` that names the
dotted key (and the file) instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from imagine.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config value or key is invalid; the message names the dotted key and its source."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where it is lossless."""
    origin = get_origin(tp)
    where = f"{key!r}" + (f" in {source}" if source else "")

    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        # With one real alternative (``Spec | None``), its own error already names the full key, e.g.
        # a typo deep inside an optional section; a summary would hide which nested key was wrong.
        options = [arg for arg in args if arg is not type(None)]
        errors = []
        for arg in options:
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as exc:
                if len(options) == 1:
                    raise
                errors.append(str(exc))
        raise ConfigError(f"config key {where}: {value!r} matches none of {_type_name(tp)} ({'; '.join(errors)})")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"config key {where}: {value!r} is not one of {list(allowed)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key {where}: expected a mapping for {tp.__name__}, got {value!r}")
        return _build(tp, value, key, source)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {where}: expected a list, got {value!r}")
        (item_tp, *rest) = get_args(tp) or (Any,)
        if origin is tuple and rest and rest[0] is not Ellipsis:
            raise ConfigError(f"config key {where}: fixed-length tuples are not supported")
        items = [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {where}: expected a mapping, got {value!r}")
        k_tp, v_tp = get_args(tp) or (Any, Any)
        return {_coerce(k, k_tp, key, source): _coerce(v, v_tp, f"{key}.{k}", source) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"config key {where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads "1e-5" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key {where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key {where}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"config key {where}: expected a path, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"config key {where}: cannot use {value!r} as {_type_name(tp)}")


def _build(cls: type[T], data: dict, prefix: str, source: str) -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(
                f"unknown config key {key!r}" + (f" in {source}" if source else "") + f" (known: {known})"
            )
        kwargs[name] = _coerce(value, hints[name], key, source)
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field was not given
        missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        names = ", ".join(f"{prefix}.{m}" if prefix else m for m in missing)
        raise ConfigError(f"missing config key(s) {names}" + (f" in {source}" if source else "")) from exc
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(_validation_message(str(exc), fields, prefix, cls.__name__)
                              + (f" in {source}" if source else "")) from exc
    return obj


def _validation_message(message: str, fields: dict, prefix: str, class_name: str) -> str:
    """A ``validate()`` message that opens with one of its fields ("name: ...", "lr must ...") names
    the full dotted key instead ("loss.name: ...", "optim.lr must ..."), so the error points at the
    line to change; any other message is prefixed with its section."""
    head = re.match(r"[A-Za-z_]\w*(?=[\s:=,]|$)", message)
    if head and head.group() in fields:
        return f"{prefix}.{message}" if prefix else message
    return f"{prefix or class_name}: {message}"


def to_dict(cfg: Any) -> dict:
    """Plain-dict view (for logging and for writing the resolved config next to a run)."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return conv(cfg)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def _set_dotted(data: dict, path: list[str], value: Any, cls: type) -> None:
    node = data
    tp: Any = cls
    for depth, part in enumerate(path):
        dotted = ".".join(path[: depth + 1])
        # Any: inside a free-form dict (a task's options), which nests freely; its owner checks the keys.
        if not (dataclasses.is_dataclass(tp) or get_origin(tp) is dict or tp is dict or tp is Any):
            raise ConfigError(f"unknown config key {dotted!r} (override)")
        if dataclasses.is_dataclass(tp):
            hints = get_type_hints(tp)
            if part not in hints:
                known = ", ".join(sorted(hints))
                raise ConfigError(f"unknown config key {dotted!r} (override; known: {known})")
            tp = hints[part]
            # unwrap Optional[Dataclass]
            if get_origin(tp) in (Union, types.UnionType):
                inner = [a for a in get_args(tp) if a is not type(None)]
                if len(inner) == 1:
                    tp = inner[0]
        else:
            tp = (get_args(tp) or (Any, Any))[1]
        if depth == len(path) - 1:
            node[part] = value
        else:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child


def load_config(cls: type[T], path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> T:
    """Build ``cls`` from an optional YAML file plus ``key=value`` overrides (overrides win)."""
    data: dict = {}
    source = ""
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {source}: {exc.strerror}") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {source} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {source} must hold a mapping at the top level")
        data = loaded
    for text in overrides:
        keys, value = parse_override(text)
        _set_dotted(data, keys, value, cls)
    if overrides:
        source = source + " + overrides" if source else "overrides"
    return _build(cls, data, "", source)


def from_dict(cls: type[T], data: dict, prefix: str = "", source: str = "") -> T:
    """Build ``cls`` from a plain dict (e.g. a free-form ``task.options`` section); errors name ``prefix.key``."""
    if not isinstance(data, dict):
        raise ConfigError(f"config key {prefix or cls.__name__} must be a mapping")
    return _build(cls, data, prefix, source)
