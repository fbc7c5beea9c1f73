"""Checking a study config's values against the types its dataclass fields declare.

A config loaded from JSON can hold anything (``{"kl_threshold": "high"}``); this turns a wrong
value into one clear error naming the key and the expected type, before any work starts.
"""

from __future__ import annotations

import numbers
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin


class StudyConfigError(ValueError):
    """A study config that cannot be used: unknown key, wrongly typed value, unreadable file."""


def type_name(tp: Any) -> str:
    """A type annotation written as in the source: ``list[str] | None``, ``float``.

    Example:
        >>> type_name(list[str] | None), type_name(float)
        ('list[str] | None', 'float')
    """
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(tp))
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin is not None:
        args = ", ".join(type_name(a) for a in get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` fits the annotation ``tp`` (JSON-style: an int is a valid float,
    a bool is neither an int nor a float, a tuple is a valid list).

    Example:
        >>> matches(3, float), matches(True, int), matches(["a"], list[str] | None)
        (True, False, True)
    """
    if tp is Any:
        return True
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return any(matches(value, a) for a in get_args(tp))
    if origin is Literal:
        return value in get_args(tp)
    if tp is type(None):
        return value is None
    if origin in (list, tuple, set, frozenset):
        if not isinstance(value, (list, tuple)):
            return False
        args = get_args(tp)
        item = args[0] if args else Any
        return all(matches(v, item) for v in value)
    if origin is dict:
        key, item = get_args(tp) or (Any, Any)
        return isinstance(value, dict) and all(
            matches(k, key) and matches(v, item) for k, v in value.items()
        )
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # an annotation this checker does not understand is not enforced


def check_fields(config: Any) -> None:
    """Raise :class:`StudyConfigError` for the first field of the dataclass ``config`` whose
    value does not fit its declared type, naming the key, the expected type and the value."""
    import dataclasses

    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        tp = hints.get(f.name, Any)
        if not matches(value, tp):
            raise StudyConfigError(
                f"{_owner(config)}: config key {f.name!r} must be {type_name(tp)}, "
                f"got {value!r} ({type(value).__name__})"
            )


def _owner(config: Any) -> str:
    """``"refusal config"`` for ``lens.studies.refusal.config.Config``, else the class name."""
    parts = type(config).__module__.split(".")
    if len(parts) >= 3 and parts[:2] == ["lens", "studies"] and parts[2] != "base":
        return f"{parts[2]} config"
    return type(config).__qualname__
