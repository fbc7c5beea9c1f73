"""Scoped, exception-safe installation of interventions and read-only probes.

``apply(model, *interventions, probes=[...])`` validates every hook name first, installs the
hooks in the given order, and removes exactly the hooks it installed, on normal exit, on an
exception (KeyboardInterrupt included) and when installation itself fails midway. Hooks it did
not install (a user's permanent or temporary hooks, an outer ``apply``) are never touched.

While any ``apply`` is live on a model, one shared pre/post forward hook pair gives every
forward call its own :class:`~interventions.base.ForwardContext` (attention mask, tokens), so a
forward run inside a hook cannot change what the outer forward's hooks see. Hook names are
resolved once per model and re-validated in O(1) per use against the live registry.
"""

from __future__ import annotations

import difflib
import inspect
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interventions import bridge
from interventions.base import (
    ForwardContext,
    HookFn,
    Intervention,
    Positions,
    forward_context,
    generation_prompt,
    pop_forward,
    position_mask,
    push_forward,
    validate_positions,
)
from lens.tokens import pad_id

_EARLY_PREFIXES = ("hook_embed", "hook_pos_embed", "embed.", "pos_embed.", "rotary_emb.")


class _Names:
    """Every valid hook name of one model -> its HookPoint, built once from the registry.

    ``canonical`` maps each name to the registry key holding the same HookPoint, so a
    resolution can be re-validated in O(1): if the registry no longer holds that HookPoint
    under that key (hooks re-registered, e.g. compatibility mode), the names are rebuilt.
    """

    def __init__(self, model: Any) -> None:
        self.registry = bridge.hook_registry(model)
        hook_dict = model.hook_dict
        aliases = bridge.alias_map(model)
        points = {name: hook_dict[aliases.get(name) or name] for name in hook_dict}
        points.update({a: hook_dict[c] for a, c in aliases.items() if c in hook_dict})
        self.points: dict[str, Any] = points
        key_of = {id(hp): key for key, hp in self.registry.items()}
        self.canonical = {name: self._key(name, hp, aliases, key_of) for name, hp in points.items()}
        self.after: dict[tuple[int, bool], list[Any]] = {}

    def _key(self, name: str, hp: Any, aliases: dict[str, str], key_of: dict) -> str | None:
        """The registry key a name reads: itself, its alias target, or any key holding it."""
        for key in (name, aliases.get(name)):
            if key is not None and self.registry.get(key) is hp:
                return key
        return key_of.get(id(hp))

    def valid(self, name: str, hook_point: Any) -> bool:
        key = self.canonical.get(name)
        return key is None or self.registry.get(key) is hook_point


_NAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _names(model: Any, refresh: bool = False) -> _Names:
    names = _NAMES.get(model)
    if names is None or refresh or names.registry is not bridge.hook_registry(model):
        names = _NAMES[model] = _Names(model)
    return names


def hook_points(model: Any) -> dict[str, Any]:
    """Every valid hook name of ``model`` (canonical names and TransformerLens-classic
    aliases such as ``blocks.0.hook_resid_post``) mapped to its HookPoint.

    Built once per model and reused; rebuilt when the model's hook registry is replaced or
    a resolved HookPoint is no longer the one registered under its name."""
    return _names(model).points


def resolve_hook(model: Any, name: str) -> Any:
    """The HookPoint behind ``name``; unknown names raise KeyError listing the closest ones.

    O(1) per call: the cached resolution is checked against the live registry entry.
    """
    names = _names(model)
    hook_point = names.points.get(name)
    if hook_point is None or not names.valid(name, hook_point):
        names = _names(model, refresh=True)
        hook_point = names.points.get(name)
    if hook_point is None:
        close = difflib.get_close_matches(name, list(names.points), n=5, cutoff=0.5)
        hint = f" Closest valid names: {close}." if close else ""
        raise KeyError(f"hook {name!r} does not exist on this model.{hint}")
    return hook_point


def hook_points_after(model: Any, layer: int, *, same_block: bool) -> list[Any]:
    """The HookPoints that may run after block ``layer``'s output (``same_block``: after its
    input, so block ``layer``'s own points too), for deciding whether a forward may stop
    early. Conservative: a point whose place is unknown counts as later. Cached per model."""
    names = _names(model)
    key = (layer, same_block)
    found = names.after.get(key)
    if found is None:
        first = layer if same_block else layer + 1
        later: dict[int, Any] = {}
        for name, hp in names.points.items():
            index = name.split(".", 2)[1] if name.startswith("blocks.") else ""
            if index.isdigit():
                if int(index) >= first:
                    later[id(hp)] = hp
            elif not name.startswith(_EARLY_PREFIXES):
                later[id(hp)] = hp
        found = names.after[key] = list(later.values())
    return found


@dataclass
class Probe:
    """Read-only capture of one activation, at chosen positions only.

    Args:
        name: hook name, e.g. ``"blocks.3.hook_resid_post"``.
        positions: see ``interventions.base.Positions``: ``"all"``, ``"last"`` (last real
            token per row, from the attention mask), integer columns of the padded batch
            (negative from its end), or a per-row index tensor; captured as
            ``[batch, k, ...]`` in increasing column order (``[batch, ...]`` for ``"last"`` or
            a per-row tensor).
        to_cpu: move captures to CPU as they are taken.
    """

    name: str
    positions: Positions = "all"
    to_cpu: bool = False
    values: list[Float[Tensor, "batch ..."]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        validate_positions(self.positions)

    @property
    def value(self) -> Float[Tensor, "batch ..."]:
        """The capture of the last forward (raises if nothing was captured)."""
        if not self.values:
            raise RuntimeError(f"probe {self.name!r} captured nothing: was the model run?")
        return self.values[-1]

    def _select(
        self, act: Float[Tensor, "batch pos ..."], model: Any
    ) -> Float[Tensor, "batch ..."]:
        pos = self.positions
        if isinstance(pos, str) and pos == "all":
            return act
        if isinstance(pos, str) or (
            isinstance(pos, Tensor) and pos.ndim == 1 and pos.shape[0] == act.shape[0]
        ):
            ctx = forward_context(model)
            batch, device = act.shape[0], act.device
            rows = ctx.cached(("rows", batch, device), lambda: torch.arange(batch, device=device))
            if isinstance(pos, str):  # last
                return act[rows, ctx.last_positions(batch, act.shape[1], device)]
            return act[rows, pos.to(device).long() - ctx.past]
        mask = position_mask(model, pos, act)
        if mask is None:  # unreachable: "all" returned above
            return act
        index = mask[0].nonzero().flatten()
        return act[:, index]

    def hook(self, model: Any) -> HookFn:
        def capture(act: Tensor, hook: Any) -> None:
            out = self._select(act, model).detach()
            self.values.append(out.cpu() if self.to_cpu else out.clone())

        return capture


@dataclass
class GradProbe(Probe):
    """Capture the gradient that reaches one activation in a backward pass, at chosen positions.

    Pass it in ``probes=`` like a :class:`Probe`. Its forward hook attaches a hook to the
    activation *tensor* (not to the module), so nothing outlives the autograd graph: the
    forward hook is removed with the ``apply`` block and the tensor hook dies with the tensor.
    The forward must run with gradients enabled and the activation must require grad.
    The hook passes on an identical view of the activation (the bridge otherwise routes some
    sites, e.g. ``attn.hook_z``, around a hook's unchanged input, and no gradient would reach it).
    ``tensors`` keeps those views, e.g. as ``inputs`` for ``torch.autograd.grad``; clear it
    to free the graph.

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.models.tiny_config("llama"))
        >>> grad = lens.GradProbe("blocks.1.hook_resid_pre", positions="last")
        >>> with lens.apply(model, probes=[grad]):
        ...     model(torch.tensor([[1, 2, 3]]))[0, -1, 7].backward()
        >>> tuple(grad.value.shape)
        (1, 64)
    """

    tensors: list[Tensor] = field(default_factory=list, repr=False)

    def hook(self, model: Any) -> HookFn:
        self.tensors.clear()

        def attach(act: Tensor, hook: Any) -> Tensor:
            if not act.requires_grad:
                raise RuntimeError(
                    f"GradProbe {self.name!r}: the activation does not require grad; run the "
                    "forward under torch.enable_grad() with parameters or inputs requiring grad"
                )

            def capture(grad: Tensor) -> None:
                out = self._select(grad, model).detach()
                self.values.append(out.cpu() if self.to_cpu else out.clone())

            out = act.view_as(act)
            out.register_hook(capture)
            self.tensors.append(out)
            return out

        return attach


class HookHandle:
    """The hooks one ``apply`` call installed. ``.remove()`` or use as a context manager."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._installed: list[tuple[Any, Any]] = []  # (hook_point, LensHandle)
        self._recording = False

    def _add(self, hook_point: Any, fn: HookFn) -> None:
        self._installed.append((hook_point, bridge.add_forward_hook(hook_point, fn)))

    def remove(self) -> None:
        """Remove exactly the hooks this handle installed (idempotent)."""
        while self._installed:
            bridge.remove_forward_hook(*self._installed.pop())
        if self._recording:
            self._recording = False
            _release_recorder(self.model)

    def others_hooked(self, hook_points: Iterable[Any]) -> bool:
        """Whether any of ``hook_points`` carries a forward hook this handle did not install
        (an outer ``apply``, a user's TransformerLens or torch hook)."""
        own: dict[int, int] = {}
        for hook_point, _ in self._installed:
            own[id(hook_point)] = own.get(id(hook_point), 0) + 1
        return any(bridge.forward_hooks_on(hp) > own.get(id(hp), 0) for hp in hook_points)

    @property
    def n_hooks(self) -> int:
        return len(self._installed)

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


class _Recorder:
    """One forward pre-hook (pushes the call's :class:`ForwardContext`) and one forward hook
    (pops it, also when the forward raises) per model, shared by every live ``apply`` on it."""

    def __init__(self, model: Any) -> None:
        self.users = 0
        mask_at = _mask_argument_index(type(model))

        def enter(module: Any, args: tuple, kwargs: dict) -> None:
            mask = kwargs.get("attention_mask")
            if mask is None and mask_at is not None and len(args) > mask_at:
                mask = args[mask_at]
            tokens = args[0] if args else kwargs.get("input", kwargs.get("input_ids"))
            tokens = tokens if isinstance(tokens, Tensor) else None
            pad = pad_id(module) if mask is None and tokens is not None else None
            past = _cached_columns(kwargs.get("past_key_values"))
            push_forward(module, ForwardContext(mask, tokens, pad, past, generation_prompt(module)))

        def leave(module: Any, args: tuple, output: Any) -> None:
            pop_forward(module)

        self.handles = (
            model.register_forward_pre_hook(enter, with_kwargs=True),
            model.register_forward_hook(leave, always_call=True),
        )


def _cached_columns(cache: Any) -> int:
    """Columns already held by a Hugging Face KV cache given to a forward (0: none)."""
    length = getattr(cache, "get_seq_length", None)
    return int(length()) if callable(length) else 0


_RECORDERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MASK_INDEX: dict[Any, int | None] = {}


def _mask_argument_index(cls: Any) -> int | None:
    """Position of ``attention_mask`` among the positional arguments of ``cls.forward``."""
    if cls not in _MASK_INDEX:
        try:
            params = list(inspect.signature(cls.forward).parameters)[1:]  # drop self
        except (TypeError, ValueError):
            params = []
        _MASK_INDEX[cls] = params.index("attention_mask") if "attention_mask" in params else None
    return _MASK_INDEX[cls]


def _acquire_recorder(model: Any) -> None:
    recorder = _RECORDERS.get(model)
    if recorder is None:
        recorder = _RECORDERS[model] = _Recorder(model)
    recorder.users += 1


def _release_recorder(model: Any) -> None:
    recorder = _RECORDERS.get(model)
    if recorder is None:
        return
    recorder.users -= 1
    if recorder.users <= 0:
        for h in recorder.handles:
            h.remove()
        del _RECORDERS[model]


def _compile(model: Any, interventions: Iterable[Intervention]) -> list[tuple[str, HookFn]]:
    pairs: list[tuple[str, HookFn]] = []
    for item in interventions:
        if not hasattr(item, "hooks"):
            raise TypeError(
                f"{type(item).__name__} is not an intervention: it needs hooks(model) "
                "-> list[(hook_name, fn)]"
            )
        pairs.extend(item.hooks(model))
    return pairs


def apply(model: Any, *interventions: Intervention, probes: Sequence[Probe] = ()) -> HookHandle:
    """Install interventions (in order) and probes on ``model``; return a removable handle.

    ``lens.apply`` is the one API that takes interventions positionally (they are what it
    applies: ``lens.apply(model, NeuronDeactivation(...), DirectionAblation(r))``); every other
    API that runs the model under interventions takes them as ``interventions=[...]``.

    Every hook name is resolved before anything is installed. Interventions sharing a hook
    point run in the order given. Use as a context manager so hooks live exactly as long as
    the block::

        >>> import lens, torch
        >>> model = lens.load_model(lens.models.tiny_config("llama"))
        >>> probe = lens.Probe("blocks.0.hook_resid_post", positions="last")
        >>> with lens.apply(model, probes=[probe]):
        ...     _ = model(torch.tensor([[1, 2, 3]]))
        >>> tuple(probe.value.shape)
        (1, 64)
    """
    pairs = _compile(model, interventions)
    resolved = [(resolve_hook(model, name), fn) for name, fn in pairs]
    probe_points = [(resolve_hook(model, p.name), p) for p in probes]
    handle = HookHandle(model)
    try:
        _acquire_recorder(model)
        handle._recording = True
        for hook_point, fn in resolved:
            handle._add(hook_point, fn)
        for hook_point, probe in probe_points:
            probe.values.clear()
            handle._add(hook_point, probe.hook(model))
    except BaseException:
        handle.remove()
        raise
    return handle


def count_hooks(model: Any) -> int:
    """Total forward and backward hooks on the model's hook points (for leak checks)."""
    unique = {id(hp): hp for hp in model.hook_dict.values()}.values()
    hooks = sum(bridge.hooks_on(hp) for hp in unique)
    return hooks + bridge.forward_pre_hook_count(model) + bridge.forward_hook_count(model)
