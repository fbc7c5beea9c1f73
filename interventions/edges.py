"""Edge patching (:class:`EdgePatch`) on the residual graph of :mod:`interventions.edge_graph`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interventions import bridge
from interventions._common import tensor_from_json, tensor_to_json
from interventions.base import HookPair, register
from interventions.edge_graph import (
    Layout,
    WriterStore,
    _attn_bias_sum,
    check_rebuild,
    layout,
    qkv_weights,
    writer_capture_hooks,
)

__all__ = ["EdgePatch", "Layout", "layout"]


Source = Literal["corrupt", "mean", "zero"]


@register
@dataclass(eq=False)
class EdgePatch:
    """Replace chosen edges' contributions: each affected reader reads the live residual
    input minus the chosen writers' live outputs plus their ``source`` values.

    Every patched reader input is first rebuilt from the residual sum of writer outputs and
    checked against the real input (within ``tol``, relative to its scale); where that fails
    (an architecture adding something else to the residual) it raises naming the reason.
    Query/key/value readers are patched per head (per key/value head with grouped queries) by
    recomputing that head's projection of the patched, normalised input.

    Args:
        edges: ``(writer, reader)`` names, e.g. ``("a0.h1", "a1.h0<k>")``.
        source: ``"corrupt"``: use ``values``, the writer outputs of another run
            ``[batch, pos, writers, d_model]`` (``lens.circuits.writer_outputs``; a forward of
            ``k x batch`` rows reads them copy-major, row ``i`` from ``values[i % batch]``);
            ``"mean"``: the same with mean writer outputs ``[1, 1 or pos, writers, d_model]``
            (broadcast over rows and positions); ``"zero"``: remove the contributions.
        values: required for ``source="corrupt"`` and ``"mean"``.
        tol: rebuild tolerance.
        mask: instead of ``edges``, a bool ``[writers, readers]`` or per-row
            ``[batch, writers, readers]`` tensor of the edges to patch.

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> patch = EdgePatch([("a0.h1", "a1.kv0<k>"), ("input", "logits")], source="zero")
        >>> with lens.apply(model, patch):
        ...     logits = model(torch.tensor([[1, 2, 3]]))
        >>> tuple(logits.shape)
        (1, 3, 257)
    """

    edges: Sequence[tuple[str, str]] = ()
    source: Source = "corrupt"
    values: Tensor | None = None
    tol: float = 1e-5
    mask: Tensor | None = None

    def __post_init__(self) -> None:
        self.edges = [(str(w), str(r)) for w, r in self.edges]
        if self.source not in ("corrupt", "mean", "zero"):
            raise ValueError(f"source must be 'corrupt', 'mean' or 'zero', got {self.source!r}")
        if self.source != "zero" and self.values is None:
            raise ValueError(
                f"source={self.source!r} needs values= (writer outputs, [batch, pos, writers, "
                "d_model]; see lens.circuits.writer_outputs)"
            )
        if self.source == "mean" and self.values is not None and self.values.shape[0] != 1:
            raise ValueError(
                f"source='mean' needs values of shape [1, 1 or pos, writers, d_model], got "
                f"{tuple(self.values.shape)}"
            )
        if self.values is not None and self.values.ndim != 4:
            raise ValueError(
                f"values must be [batch, pos, writers, d_model], got {tuple(self.values.shape)}"
            )
        if self.mask is not None and self.edges:
            raise ValueError("give edges or mask, not both")

    def edge_mask(self, lay: Layout) -> Bool[Tensor, "rows writers readers"]:
        """The patched edges as a ``[1 or batch, writers, readers]`` bool tensor."""
        exists = lay.mask()
        if self.mask is not None:
            m = self.mask.bool().cpu()
            m = m[None] if m.ndim == 2 else m
            if tuple(m.shape[1:]) != tuple(exists.shape):
                raise ValueError(
                    f"mask has shape {tuple(self.mask.shape)}; this model needs "
                    f"[(batch,) {exists.shape[0]}, {exists.shape[1]}]"
                )
            if bool((m & ~exists).any()):
                raise ValueError("mask selects edges that do not exist (see Layout.mask())")
            return m
        out = torch.zeros_like(exists)
        for w, r in self.edges:
            wi, ri = lay.writer_index(w), lay.reader_index(r)
            if not bool(exists[wi, ri]):
                raise ValueError(f"there is no edge {w} -> {r}: {w} is computed after {r} reads")
            out[wi, ri] = True
        return out[None]

    def hooks(self, model: Any) -> list[HookPair]:
        lay = layout(model)
        if self.values is not None and tuple(self.values.shape[2:]) != (
            len(lay.writers),
            int(model.cfg.d_model),
        ):
            raise ValueError(
                f"values have shape {tuple(self.values.shape)}; this model needs "
                f"[batch, pos, {len(lay.writers)}, {int(model.cfg.d_model)}]"
            )
        mask = self.edge_mask(lay)
        used = mask.any(0).any(0)  # readers with a patched edge
        store = WriterStore()
        resid: dict[int, Tensor] = {}
        cache: dict = {}  # (stage, forward) -> the stage's corrections
        pairs = writer_capture_hooks(model, store, detach=False)
        per = lay.n_heads + 2 * lay.n_kv + 1
        for layer in range(lay.n_layers):
            base = layer * per
            block = mask[:, :, base : base + per - 1]  # this layer's q, k, v readers
            spans = {"q": (0, lay.n_heads), "k": (lay.n_heads, lay.n_heads + lay.n_kv)}
            spans["v"] = (lay.n_heads + lay.n_kv, lay.n_heads + 2 * lay.n_kv)
            kinds = [k for k, (a, b) in spans.items() if bool(used[base + a : base + b].any())]
            if kinds:
                pairs.append((f"blocks.{layer}.hook_resid_pre", _keep(resid, layer)))
            for kind in kinds:
                hook = self._qkv_hook(
                    model, lay, store, resid, kind, layer, block, spans[kind], cache
                )
                pairs.append((f"blocks.{layer}.attn.hook_{kind}", hook))
            if bool(used[base + per - 1]):
                m = mask[:, :, base + per - 1 : base + per]
                hook = self._resid_hook(model, lay, store, m, 2 * layer + 2, cache)
                pairs.append((f"blocks.{layer}.ln2.hook_in", hook))
        if bool(used[-1]):
            stage = 2 * lay.n_layers + 1
            hook = self._resid_hook(model, lay, store, mask[:, :, -1:], stage, cache)
            pairs.append(("ln_final.hook_in", hook))
        return pairs

    def _corrections(
        self, model: Any, lay: Layout, store: WriterStore, stage: int, x: Tensor, m: Tensor,
        cache: dict,
    ) -> Float[Tensor, "batch pos readers d_model"]:  # fmt: skip
        """``sum_w m[row, w, r] (source_w - live_w)`` for the reader columns ``m`` of ``stage``,
        after checking the residual rebuild there; once per stage and forward (a layer's q, k
        and v hooks share it). ``source`` values of ``vb`` rows serve a batch of ``b`` rows
        copy-major (row ``i`` reads ``values[i % vb]``), without being repeated."""
        key = (stage, store.forwards)
        if key in cache:
            return cache[key]
        cache.clear()  # a new stage or forward: older entries are stale
        live = store.prefix(lay, stage)
        rebuilt = live.sum(2) + _attn_bias_sum(model, (stage - 1) // 2, x)
        check_rebuild(x, rebuilt, f"the residual input at stage {stage}", self.tol)
        b, p, k = live.shape[:3]
        mf = m[:, :k].to(live.device, live.dtype)
        one = mf.shape[0] == 1
        if one:
            out = -torch.einsum("wr,bpwd->bprd", mf[0], live)
        else:
            out = -torch.einsum("bwr,bpwd->bprd", mf, live)
        if self.source != "zero" and self.values is not None:
            vals = self.values[:, :, :k].to(live.device, live.dtype)
            vb, vp = vals.shape[:2]
            if b % vb or vp not in (1, p) or (self.source == "corrupt" and vp != p):
                raise ValueError(
                    f"values cover [batch, pos]={[vb, vp]}, the forward has {[b, p]} (the "
                    "batch must be a multiple of the values' rows)"
                )
            if one:
                add = torch.einsum("wr,vpwd->vprd", mf[0], vals).repeat(b // vb, 1, 1, 1)
            else:
                m4 = mf.reshape(b // vb, vb, k, mf.shape[-1])
                add = torch.einsum("svwr,vpwd->svprd", m4, vals).reshape(b, vp, *out.shape[2:])
            out = out + add
        cache[key] = out
        return out

    def _resid_hook(
        self, model: Any, lay: Layout, store: WriterStore, m: Tensor, stage: int, cache: dict
    ) -> Any:
        def fn(act: Tensor, hook: Any) -> Tensor:
            return act + self._corrections(model, lay, store, stage, act, m, cache)[:, :, 0]

        return fn

    def _qkv_hook(
        self,
        model: Any,
        lay: Layout,
        store: WriterStore,
        resid: dict[int, Tensor],
        kind: str,
        layer: int,
        block: Tensor,
        span: tuple[int, int],
        cache: dict,
    ) -> Any:
        norm = bridge.block_norm_params(model, layer, "ln1")
        w, b = qkv_weights(model, layer, kind)
        heads = block[:, :, span[0] : span[1]].any(0).any(0).nonzero().flatten().tolist()
        cols = [span[0] + h for h in heads]

        def project(x: Tensor, idx: list[int]) -> Tensor:
            out = torch.einsum("bphd,hde->bphe", norm.apply(x), w[idx].to(x.dtype))
            return out + b[idx].to(x.dtype) if b is not None else out

        def fn(act: Tensor, hook: Any) -> Tensor:
            x = resid[layer]
            corr = self._corrections(model, lay, store, 2 * layer + 1, x, block, cache)
            full = list(range(act.shape[2]))
            base = project(x[:, :, None].expand(-1, -1, len(full), -1), full)
            check_rebuild(act, base, f"a{layer} <{kind}> from its normalised input", self.tol)
            xh = x[:, :, None] + corr[:, :, cols]
            out = act.clone()
            out[:, :, heads] = project(xh, heads)
            return out

        return fn

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "edges": [list(e) for e in self.edges],
            "source": self.source,
            "values": None if self.values is None else tensor_to_json(self.values),
            "tol": self.tol,
            "mask": None if self.mask is None else tensor_to_json(self.mask.float()),
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> EdgePatch:
        values, mask = spec.get("values"), spec.get("mask")
        return cls(
            [(str(w), str(r)) for w, r in spec["edges"]],
            source=spec["source"],
            values=None if values is None else tensor_from_json(values),
            tol=float(spec.get("tol", 1e-5)),
            mask=None if mask is None else tensor_from_json(mask).bool(),
        )


def _keep(sink: dict[int, Tensor], layer: int) -> Any:
    def fn(act: Tensor, hook: Any) -> None:
        sink[layer] = act

    return fn
