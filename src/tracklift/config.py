"""One config object per command: typed dataclasses, loadable from YAML, overridable from the CLI.

A command declares a dataclass (fields may be nested dataclasses). :func:`add_arguments` adds one
``--flag`` per leaf field (nested fields become ``--outer.inner``), with the field's type, default and
help text (from the ``metadata={"help": ...}`` of the field). :func:`from_args` builds the config:
defaults, then the YAML file given with ``--config``, then the flags given on the command line.

An optional section (``clip: ClipConfig | None = None``) gets the same ``--clip.model``-style flags: it
stays None unless one of them (or a ``clip:`` mapping in the YAML) is given, and is then built from the
section's own defaults plus the given values; ``clip: null`` in YAML keeps it off.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

import yaml

from tracklift import storage
from tracklift.errors import ConfigError

T = TypeVar("T")
_UNSET = object()


def _section_type(tp: Any) -> type | None:
    """The dataclass of a nested section typed ``Section`` or ``Section | None``, else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and dataclasses.is_dataclass(args[0]):
            return args[0]
    return None


def _leaf_fields(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        section = _section_type(tp)
        if section is not None:
            out.extend(_leaf_fields(section, prefix + f.name + "."))
        else:
            out.append((prefix + f.name, f, tp))
    return out


def _optional_sections(cls: type, prefix: str = "") -> list[str]:
    """Dotted names of the sections typed ``Section | None`` (off unless one of their flags is given)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        section = _section_type(hints[f.name]) if f.init else None
        if section is not None:
            if not dataclasses.is_dataclass(hints[f.name]):
                out.append(prefix + f.name)
            out.extend(_optional_sections(section, prefix + f.name + "."))
    return out


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _converter(tp: Any):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _converter(args[0])
        return lambda s: None if s.lower() in ("none", "null", "") else inner(s)
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (str,)
        conv = _converter(item)
        return lambda s: [conv(x) for x in s.split(",") if x != ""]
    if origin is typing.Literal:
        return str
    if tp is bool:
        return _parse_bool
    if tp in (int, float, str):
        return tp
    return str


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return _UNSET


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add ``--config FILE`` and one flag per leaf field of dataclass ``cls``."""
    parser.add_argument("--config", metavar="YAML", help="YAML file with config values (flags override it)")
    optional = _optional_sections(cls)
    for name, f, tp in _leaf_fields(cls):
        default = _default_of(f)
        help_text = f.metadata.get("help", "")
        shown = "" if default is _UNSET else f" (default: {default})"
        section = next((p for p in optional if name.startswith(p + ".")), None)
        if section is not None:
            shown += f"; any --{section}.* flag turns {section} on"
        choices = list(typing.get_args(tp)) if typing.get_origin(tp) is typing.Literal else None
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest="cfg:" + name,
            type=_converter(tp),
            default=_UNSET,
            choices=choices,
            metavar=name.rsplit(".", 1)[-1].upper() if choices is None else None,
            help=help_text + shown,
        )


def _set(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def from_dict(cls: type[T], values: dict, where: str = "config") -> T:
    """Build dataclass ``cls`` from a (nested) dict; unknown keys are an error naming them."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for key, value in values.items():
        section = _section_type(hints[key])
        if section is not None and isinstance(value, dict):
            value = from_dict(section, value, f"{where}.{key}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_args(cls: type[T], args: argparse.Namespace) -> T:
    """Defaults ← YAML (``--config``) ← command-line flags."""
    values: dict = {}
    if getattr(args, "config", None):
        loaded = yaml.safe_load(storage.read_text(args.config)) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{args.config}: expected a mapping at the top level")
        values = loaded
    for key, value in vars(args).items():
        if key.startswith("cfg:") and value is not _UNSET:
            _set(values, key[4:], value)
    return from_dict(cls, values)
