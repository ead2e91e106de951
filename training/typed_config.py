"""Typed YAML configuration: dataclasses are the schema.

A file is read and built into its dataclasses in one pass. Every problem is a ConfigError that names the file,
the key path (``train.micro_batch_size``, ``data.datasets[0].json``) and what was expected. Strings and paths
may name environment variables (``${HUATUO_DATA}/PubMedVision``); relative paths are taken from the ``base``
folder when one is given. A section left empty takes its defaults. A dataclass checks its own values in a
``check()`` method that calls `require` with the key (relative to the section) and what is wrong.

Supported field types: nested dataclasses, ``X | None``, ``list[X]``, fixed-length ``tuple[X, Y]``, ``str``,
``Path``, ``int``, ``float`` and ``bool``. A required field may explain itself with
``field(metadata={"help": "..."})``, which the "is required" message repeats.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path

_ENV_NAME = re.compile(r"\$\{(\w+)\}")
_EXPECTED = {int: "a whole number", float: "a number", bool: "true or false", str: "text", Path: "a path"}


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the file and the key."""


class Invalid(Exception):
    """Raised by `require` inside a dataclass's check(); the loader adds the file and the section."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key} {problem}")
        self.key, self.problem = key, problem


def require(ok: bool, key: str, problem: str) -> None:
    """In a check(): `key` (a field of the section, or "" for the section as a whole) `problem` unless ok."""
    if not ok:
        raise Invalid(key, problem)


def read_yaml(path: str | Path) -> dict:
    """The file's top-level mapping."""
    import yaml  # here, so that command lines start without it

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return raw


def apply_override(raw: dict, item: str, source: str | Path) -> None:
    """``section.key=value`` (the value read as YAML) into the raw mapping, before it is built."""
    import yaml

    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected section.key=value")
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: override {key}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(value)


def build(cls, data: dict, source: str | Path, base: Path | None = None, given: dict | None = None):
    """An instance of the dataclass `cls` from the raw mapping `data`, read from `source`.

    `given`: fields set by the caller rather than read from the file (such as the file's own name); the file may
    not set them."""
    return _Loader(str(source), base).section(cls, data, "", given or {})


@dataclass(frozen=True)
class _Loader:
    source: str
    base: Path | None

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key} {problem}" if key else f"{self.source}: {problem}")

    def wrong(self, key: str, expected: str, value) -> ConfigError:
        return self.error(key, f"must be {expected}, not {value!r}")

    def section(self, cls, data, prefix: str, given: dict):
        where = prefix.rstrip(".")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.error(where or "the file", f"must be a mapping of settings, not {data!r}")
        hints = typing.get_type_hints(cls)
        fields = [f for f in dataclasses.fields(cls) if f.init and f.name not in given]
        known = [f.name for f in fields]
        unknown = sorted((key for key in data if key not in known), key=str)
        if unknown:
            raise self.error("", f"unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")
        values = dict(given)
        for f in fields:
            if f.name in data:
                values[f.name] = self.value(hints[f.name], data[f.name], prefix + f.name)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                help_text = f.metadata.get("help")
                raise self.error(prefix + f.name, "is required" + (f" ({help_text})" if help_text else ""))
        instance = cls(**values)
        check = getattr(instance, "check", None)
        if check is not None:
            try:
                check()
            except Invalid as exc:  # a section-level problem reads after the section's name
                raise self.error(prefix + exc.key if exc.key else where, exc.problem) from None
        return instance

    def value(self, hint, value, key: str):
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            (inner,) = [a for a in args if a is not type(None)]
            return self.value(inner, value, key)
        if dataclasses.is_dataclass(hint):
            return self.section(hint, value, key + ".", {})
        if origin is list:
            if not isinstance(value, list):
                raise self.wrong(key, "a list", value)
            return [self.value(args[0], item, f"{key}[{i}]") for i, item in enumerate(value)]
        if origin is tuple:
            if not isinstance(value, list | tuple) or len(value) != len(args):
                kind = "numbers" if all(a in (int, float) for a in args) else "values"
                raise self.wrong(key, f"a list of {len(args)} {kind}", value)
            pairs = zip(args, value, strict=True)
            return tuple(self.value(a, item, f"{key}[{i}]") for i, (a, item) in enumerate(pairs))
        if hint is str or hint is Path:
            if not isinstance(value, str) or (hint is Path and not value):
                raise self.wrong(key, _EXPECTED[hint], value)
            text = self.expand(value, key)
            if hint is str:
                return text
            path = Path(text).expanduser()
            return path if path.is_absolute() or self.base is None else self.base / path
        if hint is bool:
            if not isinstance(value, bool):
                raise self.wrong(key, _EXPECTED[bool], value)
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.wrong(key, _EXPECTED[int], value)
            return value
        if hint is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                try:  # YAML 1.1 reads "1e-3" (no dot) as a string
                    return float(value)
                except ValueError:
                    pass
            raise self.wrong(key, _EXPECTED[float], value)
        raise TypeError(f"{key}: no rule for fields of type {hint!r}")

    def expand(self, value: str, key: str) -> str:
        unset = [name for name in _ENV_NAME.findall(value) if name not in os.environ]
        if unset:
            raise self.error(key, f"names the environment variable {unset[0]}, which is not set ({value!r})")
        return os.path.expandvars(value)
