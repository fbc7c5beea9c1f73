"""Checking a study config's values against what its dataclass fields declare.

Each field declares its type and, next to it, its valid values with ``Annotated``:

    samples: Annotated[int, Range(1)] = 5              # a count: at least 1
    noise: Annotated[float, Range(0, open_low=True)] = 3.0   # strictly positive
    fit_fraction: Annotated[float, Range(0, 1)] = 0.5  # a share in [0, 1]
    positions: Annotated[list[int], Range(high=-1), Items(1, unique=True)] = ...
    layers: Annotated[list[int] | None, Layer()] = None   # checked against the model at run

A config loaded from JSON can hold anything (``{"kl_threshold": "high"}``, ``{"samples": -3}``);
:func:`check_fields` turns a wrong value into one clear :class:`StudyConfigError` naming the
key, the value and what is allowed, before any work starts. Fields marked :class:`Layer` are
checked against a model by :func:`check_layers` when the study runs (the config alone does not
know how deep the model is).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

__all__ = [
    "Items",
    "Layer",
    "Range",
    "StudyConfigError",
    "check_fields",
    "check_layers",
    "matches",
    "owner",
    "type_name",
]


class StudyConfigError(ValueError):
    """A study config that cannot be used: unknown key, wrongly typed or out-of-range value,
    layer outside the model, unreadable file."""


@dataclass(frozen=True)
class Range:
    """The valid numbers of a field: ``low <= x <= high`` (None: unbounded; ``open_*``: the
    bound itself is excluded). Applies to a number, or to every number of a list or dict.
    Non-finite numbers (NaN, inf) are always refused.

    Example:
        >>> Range(1).describe(), Range(0, 1).describe(), Range(0, open_low=True).describe()
        ('>= 1', 'in [0, 1]', '> 0')
        >>> Range(0, 1).problem(1.5)
        'must be in [0, 1]'
    """

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def describe(self) -> str:
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
            return f"in {left}{_num(lo)}, {_num(hi)}{right}"
        if lo is not None:
            return f"{'>' if self.open_low else '>='} {_num(lo)}"
        if hi is not None:
            return f"{'<' if self.open_high else '<='} {_num(hi)}"
        return "finite"

    def contains(self, x: float) -> bool:
        if isinstance(x, float) and not math.isfinite(x):
            return False
        if self.low is not None and not (x > self.low if self.open_low else x >= self.low):
            return False
        return self.high is None or (x < self.high if self.open_high else x <= self.high)

    def problem(self, value: Any) -> str | None:
        """None when every number in ``value`` is allowed, else what the field needs."""
        bad = [x for x in _numbers(value) if not self.contains(x)]
        if not bad:
            return None
        if _is_number(value):
            return f"must be {self.describe()}"
        return f"must have every entry {self.describe()} ({_short(bad[0])} is not)"


@dataclass(frozen=True)
class Items:
    """A list field's size and duplicates: at least ``min`` entries; ``unique``: no repeats.
    None passes (it means "the default" wherever a field allows it).

    Example:
        >>> Items(1, unique=True).problem([2, 2]), Items(1).problem([])
        ('must not repeat an entry (2 twice)', 'must hold at least 1 entry')
    """

    min: int = 0
    unique: bool = False

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, (list, tuple)):
            return None
        if len(value) < self.min:
            return f"must hold at least {self.min} entr{'y' if self.min == 1 else 'ies'}"
        if self.unique:
            seen: set[Any] = set()
            for v in value:
                key = repr(v)
                if key in seen:
                    return f"must not repeat an entry ({v!r} twice)"
                seen.add(key)
        return None


@dataclass(frozen=True)
class Layer:
    """The field names layers of the model (an int or a list of ints; strings such as
    ``"all"`` and None pass). Checked by :func:`check_layers` when the study runs: layers
    ``-n..n-1`` of an ``n``-layer model, negative ones counted from the end (``-1`` is the
    last layer). ``spare_last``: the last layer is not allowed (a shortcut from it is empty).
    """

    spare_last: bool = False


def type_name(tp: Any) -> str:
    """A type annotation written as in the source: ``list[str] | None``, ``float``.

    Example:
        >>> type_name(list[str] | None), type_name(float)
        ('list[str] | None', 'float')
    """
    origin = get_origin(tp)
    if origin is Annotated:
        return type_name(get_args(tp)[0])
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
    if origin is Annotated:
        return matches(value, get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return any(matches(value, a) for a in get_args(tp))
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in get_args(tp))
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


def declared(cls: type) -> dict[str, tuple[Any, tuple[Any, ...]]]:
    """``{field: (type, markers)}`` of a config dataclass (markers: its ``Annotated`` extras).

    Example:
        >>> @dataclass
        ... class C:
        ...     n: Annotated[int, Range(1)] = 1
        >>> declared(C)
        {'n': (<class 'int'>, (Range(low=1, high=None, open_low=False, open_high=False),))}
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    out: dict[str, tuple[Any, tuple[Any, ...]]] = {}
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name, Any)
        if get_origin(tp) is Annotated:
            base, *markers = get_args(tp)
            out[f.name] = (base, tuple(markers))
        else:
            out[f.name] = (tp, ())
    return out


def check_fields(config: Any) -> None:
    """Raise one :class:`StudyConfigError` listing every field of the dataclass ``config``
    whose value does not fit its declared type or range, each with the key, the value and
    what is allowed. Every number (also inside lists) must be finite and fit in 64 bits.

    Example:
        >>> from lens.studies.causal_tracing import Config
        >>> Config(noise=-1, batch_size=0)
        Traceback (most recent call last):
        ...
        lens.studies.config_types.StudyConfigError: causal_tracing config: config key 'noise' must be > 0, got -1; config key 'batch_size' must be in [1, 65536], got 0
    """  # noqa: E501
    problems = []
    for name, (tp, markers) in declared(type(config)).items():
        value = getattr(config, name)
        if not matches(value, tp):
            problems.append(
                f"config key {name!r} must be {type_name(tp)}, "
                f"got {_short(value)} ({type(value).__name__})"
            )
            continue
        found = [m.problem(value) for m in markers if hasattr(m, "problem")]
        if not any(isinstance(m, Range) for m in markers):
            found.append(Range().problem(value))  # NaN and inf are never a setting
        if any(isinstance(x, numbers.Integral) and abs(x) >= 2**63 for x in _numbers(value)):
            found.insert(0, "must fit in 64 bits")
        first = next((p for p in found if p is not None), None)
        if first is not None:
            problems.append(f"config key {name!r} {first}, got {_short(value)}")
    if problems:
        raise StudyConfigError(f"{owner(type(config))}: " + "; ".join(problems))


def check_layers(config: Any, n_layers: int) -> dict[str, Any]:
    """The :class:`Layer` fields of ``config`` checked against an ``n_layers``-deep model,
    negative layers turned into their place from the start: ``{field: resolved value}``.

    Example:
        >>> @dataclass
        ... class C:
        ...     layers: Annotated[list[int] | None, Layer()] = None
        >>> check_layers(C([0, -1]), 4)
        {'layers': [0, 3]}
        >>> check_layers(C([4]), 4)
        Traceback (most recent call last):
        ...
        lens.studies.config_types.StudyConfigError: C: config key 'layers' names layer 4, but this model has layers 0..3 (or -4..-1 from the end)
    """  # noqa: E501
    out: dict[str, Any] = {}
    for name, (_, markers) in declared(type(config)).items():
        marks = [m for m in markers if isinstance(m, Layer)]
        value = getattr(config, name)
        if not marks or value is None or isinstance(value, str):
            continue
        top = n_layers - 1 if marks[0].spare_last else n_layers
        resolved = []
        for layer in [value] if isinstance(value, int) else list(value):
            if not -top <= layer < top:
                spare = " before the last" if marks[0].spare_last else ""
                raise StudyConfigError(
                    f"{owner(type(config))}: config key {name!r} names layer {layer}, but this "
                    f"model has layers{spare} 0..{top - 1} (or -{top}..-1 from the end)"
                )
            resolved.append(layer % top if layer < 0 else layer)
        out[name] = resolved[0] if isinstance(value, int) else resolved
    return out


def _numbers(value: Any) -> list[float]:
    if _is_number(value):
        return [int(value) if isinstance(value, numbers.Integral) else float(value)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _numbers(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    return []


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def owner(cls: type) -> str:
    """``"refusal config"`` for ``lens.studies.refusal.config.Config``, else the class name."""
    parts = cls.__module__.split(".")
    if len(parts) >= 4 and parts[:2] == ["lens", "studies"]:
        return f"{parts[2]} config"
    return cls.__qualname__
