"""Scoped, exception-safe installation of interventions and read-only probes.

``apply(model, interventions=[...], probes=[...])`` validates every hook name first, installs the
hooks in the given order, and removes exactly the hooks it installed, on normal exit, on an
exception (KeyboardInterrupt included) and when installation itself fails midway. Hooks it did
not install (a user's permanent or temporary hooks, an outer ``apply``) are never touched.
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interventions import bridge
from interventions.base import (
    HookFn,
    Intervention,
    Positions,
    forward_context,
    position_mask,
    validate_positions,
)

_ALIAS_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def hook_points(model: Any) -> dict[str, Any]:
    """Every valid hook name of ``model`` (canonical names and TransformerLens-classic
    aliases such as ``blocks.0.hook_resid_post``) mapped to its HookPoint. Cached per model."""
    cached = _ALIAS_CACHE.get(model)
    if cached is None:
        hook_dict = model.hook_dict
        aliases = bridge.alias_map(model)
        cached = {name: hook_dict[aliases.get(name, name)] for name in hook_dict}
        cached.update({a: hook_dict[c] for a, c in aliases.items() if c in hook_dict})
        _ALIAS_CACHE[model] = cached
    return cached


def resolve_hook(model: Any, name: str) -> Any:
    """The HookPoint behind ``name``; unknown names raise KeyError listing the closest ones."""
    names = hook_points(model)
    hook_point = names.get(name)
    if hook_point is None:
        close = difflib.get_close_matches(name, list(names), n=5, cutoff=0.5)
        hint = f" Closest valid names: {close}." if close else ""
        raise KeyError(f"hook {name!r} does not exist on this model.{hint}")
    return hook_point


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
        rows = torch.arange(act.shape[0], device=act.device)
        if isinstance(pos, str):  # last
            last = forward_context(model).last_positions(act.shape[0], act.shape[1], act.device)
            return act[rows, last]
        if isinstance(pos, Tensor) and pos.ndim == 1 and pos.shape[0] == act.shape[0]:
            return act[rows, pos.to(act.device).long()]
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
        self._mask_handle: Any = None

    def _add(self, hook_point: Any, fn: HookFn) -> None:
        handle = hook_point.add_hook(fn, dir="fwd")
        self._installed.append((hook_point, handle))

    def remove(self) -> None:
        """Remove exactly the hooks this handle installed (idempotent)."""
        while self._installed:
            hook_point, handle = self._installed.pop()
            handle.hook.remove()
            hook_point.fwd_hooks[:] = [h for h in hook_point.fwd_hooks if h is not handle]
        if self._mask_handle is not None:
            self._mask_handle.remove()
            self._mask_handle = None

    @property
    def n_hooks(self) -> int:
        return len(self._installed)

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _record_mask(model: Any) -> Any:
    """Pre-forward hook storing the call's attention mask in the model's ForwardContext."""
    ctx = forward_context(model)

    def pre_hook(module: Any, args: tuple, kwargs: dict) -> None:
        ctx.attention_mask = kwargs.get("attention_mask")

    return model.register_forward_pre_hook(pre_hook, with_kwargs=True)


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


def apply(
    model: Any, *, interventions: Sequence[Intervention] = (), probes: Sequence[Probe] = ()
) -> HookHandle:
    """Install interventions (in order) and probes on ``model``; return a removable handle.

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
    if hasattr(interventions, "hooks"):
        raise TypeError("interventions= takes a list: pass interventions=[x], not interventions=x")
    pairs = _compile(model, interventions)
    resolved = [(resolve_hook(model, name), fn) for name, fn in pairs]
    probe_points = [(resolve_hook(model, p.name), p) for p in probes]
    handle = HookHandle(model)
    try:
        handle._mask_handle = _record_mask(model)
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
    hooks = sum(len(hp.fwd_hooks) + len(hp.bwd_hooks) for hp in unique)
    return hooks + bridge.forward_pre_hook_count(model)
