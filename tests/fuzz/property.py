"""The property every fuzz case checks, in one place.

Every generated input must end in exactly one of two ways:

* a result whose numbers are all finite (NaN is allowed only where a result marks the slot
  as not computed, e.g. ``LogitLensResult.valid == False`` for padding), or
* one **clear error**: an exception that lens itself raised on purpose (the innermost frame of
  its traceback is in ``lens/`` or ``interventions/``) with a non-empty, one-line message, of a
  type in :data:`CLEAR_ERRORS`: ``ValueError`` (lens's own error types all subclass it:
  ``StudyConfigError``, ``DataFormatError``, ``ModelLoadError``, ``CheckpointError``,
  ``NoDirectionFound``), ``TypeError``, ``KeyError``, or ``IndexError`` for an index outside
  a stated range (the CLI never takes such an index). Anything else is a bug: an exception
  from inside torch or TransformerLens (``IndexError: index out of range in self`` from the
  embedding, a ``RuntimeError`` on a shape mismatch), an ``AssertionError``, a
  ``ZeroDivisionError``, or a clear type whose message is Python's generic one that names no
  argument (``'float' object is not iterable``, see :data:`GENERIC`).

Either way, no hook may be left installed on the model (``lens.count_hooks(model) == 0``)
and the process's peak resident memory stays below :data:`MEMORY_BOUND`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import resource
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import interventions
import lens

CLEAR_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, KeyError, IndexError)
OWN_CODE = (Path(lens.__file__).parent, Path(interventions.__file__).parent)
MEMORY_BOUND = 4 * 2**30  # bytes of peak RSS for the whole test process (tiny models: < 1.5 GiB)
OUTCOMES: Counter[str] = Counter()  # per API: "ok" / "error"; printed after the run
MESSAGES: Counter[str] = Counter()  # API + start of each clear error (LENS_FUZZ_VERBOSE=1 prints)


def peak_rss() -> int:
    """The process's peak resident set size in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def message_of(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return str(text).strip()


GENERIC = re.compile(
    r"object is not (iterable|subscriptable|callable)|unsupported operand|unhashable type"
    r"|takes \d+ positional|unexpected keyword|^list index out of range|^'\w+'$|^\d+$"
)


def raised_by_lens(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is lens's (or interventions') code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    where = Path(tb.tb_frame.f_code.co_filename).resolve()
    return any(root.resolve() in where.parents for root in OWN_CODE)


def check(api: str, model: Any, call: Callable[[], Any], finite: Callable[[Any], None]) -> Any:
    """Run ``call`` and check the property; returns the result (None after a clear error)."""
    assert lens.count_hooks(model) == 0, "a hook was left by an earlier case"
    try:
        result = call()
    except CLEAR_ERRORS as exc:
        if not raised_by_lens(exc):
            raise
        msg = message_of(exc)
        assert msg, f"{type(exc).__name__} without a message"
        assert not GENERIC.search(msg), f"{type(exc).__name__}: {msg!r} names no argument"
        OUTCOMES[f"{api}: clear error"] += 1
        MESSAGES[f"{api}: {type(exc).__name__}: {msg[:70]}"] += 1
        return None
    finally:
        assert lens.count_hooks(model) == 0, f"{api} left {lens.count_hooks(model)} hooks"
        assert peak_rss() < MEMORY_BOUND, f"peak RSS {peak_rss() / 2**30:.2f} GiB"
    finite(result)
    OUTCOMES[f"{api}: result"] += 1
    return result


def assert_finite(value: Any, where: str = "result") -> None:
    """Every float in ``value`` (tensors, arrays, numbers, dataclasses, dicts, lists) is finite."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            assert torch.isfinite(value).all(), f"{where}: non-finite values"
    elif isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            assert np.isfinite(value).all(), f"{where}: non-finite values"
    elif isinstance(value, float):
        assert math.isfinite(value), f"{where} = {value}"
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            assert_finite(getattr(value, f.name), f"{where}.{f.name}")
    elif isinstance(value, dict):
        for k, v in value.items():
            assert_finite(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            assert_finite(v, f"{where}[{i}]")


def logit_lens_finite(res: Any) -> None:
    """Finite where decoded (``valid``); probabilities in [0, 1]; ids within the vocabulary."""
    valid = np.asarray(res.valid, dtype=bool)  # [batch, positions]
    for name in ("top_probs", "entropy", "target_probs", "category_mass"):
        arr = getattr(res, name)
        if arr is None:
            continue
        arr = np.asarray(arr)
        mask = np.broadcast_to(valid.reshape(1, *valid.shape, *([1] * (arr.ndim - 3))), arr.shape)
        assert np.isfinite(arr[mask]).all(), f"LogitLensResult.{name}: non-finite where valid"
    rows = np.broadcast_to(valid[None], np.asarray(res.top_ids).shape[:3])
    probs = np.asarray(res.top_probs)[rows]
    assert ((probs >= 0) & (probs <= 1 + 1e-5)).all(), "probabilities outside [0, 1]"
    top = np.asarray(res.top_ids)[rows]
    assert top.size == 0 or top.min() >= 0, "negative token id where decoded"


def patching_finite(res: Any) -> None:
    assert_finite(res.clean_metric, "clean_metric")
    assert_finite(res.corrupt_metric, "corrupt_metric")
    for site in res.raw:
        assert_finite(res.raw[site], f"raw[{site!r}]")
        assert_finite(res.values(site), f"values({site!r})")
