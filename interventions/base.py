"""The Intervention protocol, the to_dict/from_dict registry, and mask-aware positions
(their JSON form is in :mod:`interventions._common`).

An intervention is plain data (a dataclass) that compiles, against a given model, to a list
of ``(hook_name, fn)`` pairs. ``fn(activation, hook) -> activation | None`` follows the
TransformerLens hook convention. The installer (``lens.apply``) owns the hooks' lifetime.

Positions such as ``"last"`` need the attention mask of the forward being run. The installer
records it per forward in a :class:`ForwardContext` (see :func:`forward_context`), which hook
functions read; interventions therefore never parse hook names or guess padding.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


class HookFn(Protocol):
    """A TransformerLens forward hook: ``fn(activation, hook) -> activation | None``.

    Returning a tensor replaces the activation; returning None leaves it unchanged.
    """

    def __call__(self, act: Tensor, hook: Any, /) -> Tensor | None: ...


HookPair = tuple[str, HookFn]

PositionName = Literal["all", "last", "prompt", "generated"]
Positions = PositionName | int | Sequence[int] | Tensor
"""Which token positions an API reads or writes; one meaning everywhere it is accepted.

* ``"all"``: every position (readers that pool statistics skip padding).
* ``"last"``: the last real token of each row, from the forward's attention mask. A forward
  given no mask is taken as unpadded (the last column); one whose tokens are visibly
  right-padded (some rows end with the pad id, others do not) raises, asking for the mask.
* ``"prompt"`` / ``"generated"``: during ``lens.generate``, the columns of the (left-padded)
  prompt / the columns generated after it; outside a generation every column is prompt
  (``"generated"`` then touches nothing).
* integers: columns of the padded ``[batch, pos]`` tensor, the same for every row; negative
  values count from the padded end (``-1`` is the last column, which is the last real token
  only under left padding).
* a 1-D integer tensor of length batch: one column per row; a 2-D bool tensor: a mask.

Columns are absolute: in a forward that extends a KV cache (``ForwardContext.past`` columns
already cached) column ``c`` of the whole sequence is column ``c - past`` of the activation,
so a cached generation step touches exactly what an uncached re-run of the prefix would.

Offsets counted from each prompt's own last real token are a different thing and have their
own name, ``from_end`` (``lens.collect``, ``lens.finders.diff_in_means``).
"""

_REGISTRY: dict[str, Any] = {}  # class name -> class with from_dict


@runtime_checkable
class Intervention(Protocol):
    """Anything with ``hooks(model) -> list[(hook_name, fn)]``.

    ``hooks`` must validate against the model and raise *before* returning when the
    intervention does not fit it (wrong layer, wrong size): nothing is installed then.
    """

    def hooks(self, model: Any) -> list[HookPair]: ...


def register(cls: type) -> type:
    """Class decorator: make ``cls`` reachable from :func:`from_dict` by its name."""
    _REGISTRY[cls.__name__] = cls
    return cls


def from_dict(spec: dict[str, Any]) -> Any:
    """Rebuild an intervention from ``obj.to_dict()`` (JSON-safe dict with a ``"type"`` key).

    Example:
        >>> import torch
        >>> from interventions import DirectionAblation, from_dict
        >>> a = DirectionAblation(torch.ones(4))
        >>> from_dict(a.to_dict()).to_dict() == a.to_dict()
        True
    """
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError("from_dict expects a dict with a 'type' key, as written by to_dict()")
    kind = spec["type"]
    if kind not in _REGISTRY:
        raise ValueError(f"unknown intervention type {kind!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[kind].from_dict(spec)


@dataclass
class ForwardContext:
    """What hooks may know about one forward in flight: its attention mask and input tokens.

    ``lens.apply`` pushes one per forward call (see :func:`push_forward`) and pops it when
    the call returns or raises, so a forward run inside a hook, or under a nested ``apply``,
    has its own context and cannot overwrite the outer forward's. Positions derived from the
    mask are computed once per forward and shape, then reused by every hook.

    Args:
        attention_mask: the mask the forward was given (None: none was given).
        tokens: the forward's input ids, kept to detect an unmasked padded batch.
        pad_id: the tokenizer's padding id (None: unknown, no detection).
        past: columns held in a KV cache before this forward's first column (the mask then
            spans ``past`` + the forward's columns).
        prompt_columns: within a generation, the padded prompt's width (columns from there
            on are generated); None outside one.
    """

    attention_mask: Int[Tensor, "batch pos"] | None = None
    tokens: Tensor | None = None
    pad_id: int | None = None
    past: int = 0
    prompt_columns: int | None = None
    _cache: dict[tuple, Tensor] = field(default_factory=dict, repr=False, compare=False)

    def last_positions(self, batch: int, seq: int, device: torch.device) -> Int[Tensor, " batch"]:
        """Index of the last real token per row, from the mask (right or left padding).

        A forward without an attention mask is taken to have no padding (the last column),
        unless its tokens are visibly right-padded (some rows end with the pad id, others
        do not): that raises, asking for ``attention_mask=``. A mask whose shape differs
        from the activation's ``(batch, seq)`` raises instead of guessing.
        """
        key = ("last", batch, seq, device)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        mask = self.attention_mask
        if mask is not None and self.past and tuple(mask.shape) == (batch, self.past + seq):
            mask = mask[:, self.past :]  # a cached step: the mask also spans the cached columns
        if mask is None:
            self._check_unpadded(batch, seq)
            last = torch.full((batch,), seq - 1, dtype=torch.long, device=device)
        elif tuple(mask.shape) != (batch, seq):
            raise ValueError(
                f"the forward's attention mask has shape {tuple(mask.shape)} but the activation "
                f"is [batch={batch}, pos={seq}]: positions='last' cannot be located; pass the "
                "mask that belongs to the tokens (model(tokens, attention_mask=mask))"
            )
        else:
            last = last_real_positions(mask.to(device))
        self._cache[key] = last
        return last

    def cached(self, key: tuple, build: Any) -> Tensor:
        """The tensor cached under ``key`` for this forward (``build()`` runs once)."""
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = build()
        return cached

    def _check_unpadded(self, batch: int, seq: int) -> None:
        tokens = self.tokens
        if tokens is None or tokens.ndim != 2 or tuple(tokens.shape) != (batch, seq):
            return
        refuse_right_padding(
            tokens,
            self.pad_id,
            "positions='last': the forward got no attention mask",
            "Pass the mask: model(b.tokens, attention_mask=b.attention_mask)",
        )


def refuse_right_padding(tokens: Tensor, pad_id: int | None, what: str, fix: str) -> None:
    """Raise when ``tokens`` (given without a mask) are visibly right-padded: some rows end
    with ``pad_id`` and others do not, so their last column would be padding.

    Example:
        >>> import torch
        >>> refuse_right_padding(torch.tensor([[5, 6], [7, 8]]), 0, "x", "fix")  # no padding
        >>> refuse_right_padding(torch.tensor([[5, 6], [7, 0]]), 0, "x", "fix")
        Traceback (most recent call last):
        ...
        ValueError: x, but rows [1] of its tokens end with the pad id 0 while others do not (a right-padded batch): the last column would be padding. fix
    """  # noqa: E501
    if pad_id is None or tokens.ndim != 2 or tokens.shape[0] < 2 or tokens.is_floating_point():
        return
    ends_with_pad = tokens[:, -1] == pad_id
    if bool(ends_with_pad.any()) and not bool(ends_with_pad.all()):
        rows = ends_with_pad.nonzero().flatten().tolist()
        raise ValueError(
            f"{what}, but rows {rows[:8]} of its tokens end with the pad id {pad_id} while "
            f"others do not (a right-padded batch): the last column would be padding. {fix}"
        )


def last_real_positions(attention_mask: Int[Tensor, "batch pos"]) -> Int[Tensor, " batch"]:
    """Column of the last real token of each row, for any padding side.

    Example:
        >>> import torch
        >>> last_real_positions(torch.tensor([[0, 1, 1], [1, 1, 0]])).tolist()
        [2, 1]
    """
    mask = attention_mask.bool()
    if not bool(mask.any(dim=1).all()):
        raise ValueError("a row of the batch has no real tokens (its attention mask is all 0)")
    idx = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask, idx, torch.full_like(idx, -1)).max(dim=1).values


_STACKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> [ForwardContext]


def forward_context(model: Any) -> ForwardContext:
    """The context of ``model``'s innermost forward in flight (an empty one when none is).

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(2, 2)
        >>> push_forward(model, ForwardContext(torch.tensor([[1, 1, 0]])))
        >>> forward_context(model).last_positions(1, 3, torch.device("cpu")).tolist()
        [1]
        >>> pop_forward(model); forward_context(model).attention_mask is None
        True
    """
    try:
        stack = _STACKS.get(model)
    except TypeError:  # not weakly referenceable (e.g. None): no forward is tracked
        stack = None
    return stack[-1] if stack else ForwardContext()


def push_forward(model: Any, ctx: ForwardContext) -> None:
    """Enter a forward of ``model``: ``ctx`` is what its hooks see until :func:`pop_forward`."""
    stack = _STACKS.get(model)
    if stack is None:
        stack = _STACKS[model] = []
    stack.append(ctx)


def pop_forward(model: Any) -> None:
    """Leave ``model``'s innermost forward (after it returned or raised)."""
    stack = _STACKS.get(model)
    if stack:
        stack.pop()


_PROMPTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> prompt columns


def generation_prompt(model: Any) -> int | None:
    """The padded prompt width of the generation running on ``model`` (None: none is)."""
    try:
        return _PROMPTS.get(model)
    except TypeError:
        return None


@contextmanager
def generating(model: Any, prompt_columns: int) -> Iterator[None]:
    """Mark a generation on ``model`` whose prompt spans ``prompt_columns`` padded columns:
    forwards inside see ``ForwardContext.prompt_columns`` (positions ``"prompt"`` and
    ``"generated"``).

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(2, 2)
        >>> with generating(model, 3):
        ...     generation_prompt(model)
        3
        >>> generation_prompt(model) is None
        True
    """
    outer = _PROMPTS.get(model)
    _PROMPTS[model] = prompt_columns
    try:
        yield
    finally:
        if outer is None:
            _PROMPTS.pop(model, None)
        else:
            _PROMPTS[model] = outer


def validate_positions(positions: Positions) -> Positions:
    """Check a positions spec at construction time; returns it unchanged."""
    if isinstance(positions, str):
        if positions not in ("all", "last", "prompt", "generated"):
            raise ValueError(
                "positions must be 'all', 'last', 'prompt', 'generated' or indices, "
                f"got {positions!r}"
            )
        return positions
    if isinstance(positions, Tensor):
        if positions.dtype not in (torch.int64, torch.int32, torch.bool):
            raise ValueError("positions tensor must hold integer indices or a boolean mask")
        return positions
    if isinstance(positions, int) and not isinstance(positions, bool):
        return positions
    if isinstance(positions, bool) or not isinstance(positions, Sequence):
        raise TypeError(
            "positions must be 'all', 'last', 'prompt', 'generated', an int, a list of ints "
            f"or a tensor, got {positions!r}"
        )
    items = list(positions)
    if not items:
        raise ValueError("positions is empty: nothing would be changed")
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in items):
        raise ValueError(f"positions must be integers, got {items!r}")
    return positions


def position_mask(
    model: Any, positions: Positions, act: Float[Tensor, "batch pos ..."]
) -> Bool[Tensor, "batch pos"] | None:
    """Boolean [batch, pos] mask of the positions to touch, or None for all positions.

    See :data:`Positions` for the meaning of each form. ``"last"`` and integer columns are
    computed once per forward and shape (cached in its :class:`ForwardContext` and shared by
    every hook of that forward: do not modify the returned mask in place).

    Example:
        >>> import torch
        >>> position_mask(None, [0, -1], torch.zeros(1, 3, 4)).tolist()
        [[True, False, True]]
    """
    if isinstance(positions, str) and positions == "all":
        return None
    batch, seq, device = act.shape[0], act.shape[1], act.device
    ctx = forward_context(model)
    past = ctx.past
    if isinstance(positions, Tensor):
        return _tensor_mask(positions.to(device), batch, seq, past)
    if positions in ("prompt", "generated"):
        prompt = ctx.prompt_columns

        def split_mask() -> Tensor:
            columns = torch.arange(past, past + seq, device=device)
            in_prompt = columns < (prompt if prompt is not None else past + seq)
            keep = in_prompt if positions == "prompt" else ~in_prompt
            return keep[None].expand(batch, seq)

        return ctx.cached((positions, batch, seq, device), split_mask)
    if isinstance(positions, str):  # "last"

        def last_mask() -> Tensor:
            mask = torch.zeros(batch, seq, dtype=torch.bool, device=device)
            rows = torch.arange(batch, device=device)
            mask[rows, ctx.last_positions(batch, seq, device)] = True
            return mask

        return ctx.cached(("last-mask", batch, seq, device), last_mask)
    idx = [positions] if isinstance(positions, int) else list(positions)

    def columns_mask() -> Tensor:
        total = past + seq
        bad = [p for p in idx if not -total <= p < total]
        if bad:
            raise IndexError(f"positions {bad} out of range for sequence length {total}")
        local = [(p if p >= 0 else total + p) - past for p in idx]
        mask = torch.zeros(batch, seq, dtype=torch.bool, device=device)
        mask[:, [c for c in local if 0 <= c < seq]] = True
        return mask

    return ctx.cached(("columns", tuple(idx), batch, seq, device), columns_mask)


def _tensor_mask(pos: Tensor, batch: int, seq: int, past: int) -> Tensor:
    """The [batch, seq] mask of a tensor positions spec, its columns absolute (see Positions)."""
    if pos.dtype == torch.bool:
        if past and pos.shape == (batch, past + seq):
            return pos[:, past:]
        if pos.shape != (batch, seq):
            raise ValueError(f"bool positions shape {tuple(pos.shape)} != {(batch, seq)}")
        return pos
    mask = torch.zeros(batch, seq, dtype=torch.bool, device=pos.device)
    local = pos.long() - past
    if pos.ndim == 1 and pos.shape[0] == batch:
        inside = (local >= 0) & (local < seq)
        rows = torch.arange(batch, device=pos.device)
        mask[rows[inside], local[inside]] = True
        return mask
    local = local.flatten()
    if not past:
        mask[:, local] = True  # as before: out-of-range columns raise
        return mask
    mask[:, local[(local >= 0) & (local < seq)]] = True
    return mask
