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
    _attn_bias_sum,
    check_rebuild,
    layout,
    qkv_weights,
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
        mask: instead of ``edges``, a bool ``[writers, readers]`` tensor of the edges to
            patch, or ``[groups, writers, readers]``: a forward of ``rows`` rows (a multiple
            of ``groups``) patches row ``i`` with ``mask[i // (rows / groups)]`` (one mask per
            row when ``groups = rows``; one per block of copies in a copy-major batch).

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

    def edge_mask(self, lay: Layout) -> Bool[Tensor, "groups writers readers"]:
        """The patched edges as a ``[1 or groups, writers, readers]`` bool tensor."""
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
        run = _Pass(self, model, lay, mask)
        resid: dict[int, Tensor] = {}
        pairs: list[HookPair] = [("blocks.0.hook_resid_pre", run.start)]
        per = lay.n_heads + 2 * lay.n_kv + 1
        for layer in range(lay.n_layers):
            pairs.append((bridge.z_hook(layer), run.put_heads(layer)))
            pairs.append((f"blocks.{layer}.hook_mlp_out", run.put_mlp(layer)))
            base = layer * per
            spans = {"q": (0, lay.n_heads), "k": (lay.n_heads, lay.n_heads + lay.n_kv)}
            spans["v"] = (lay.n_heads + lay.n_kv, lay.n_heads + 2 * lay.n_kv)
            kinds = [k for k, (a, b) in spans.items() if bool(used[base + a : base + b].any())]
            if kinds:
                pairs.append((f"blocks.{layer}.hook_resid_pre", _keep(resid, layer)))
            for kind in kinds:
                hook = self._qkv_hook(model, run, resid, kind, layer, spans[kind], base, per - 1)
                pairs.append((f"blocks.{layer}.attn.hook_{kind}", hook))
            if bool(used[base + per - 1]):
                hook = run.resid_hook(2 * layer + 2, base + per - 1)
                pairs.append((f"blocks.{layer}.ln2.hook_in", hook))
        if bool(used[-1]):
            pairs.append(("ln_final.hook_in", run.resid_hook(2 * lay.n_layers + 1, len(used) - 1)))
        return pairs

    def _qkv_hook(
        self, model: Any, run: _Pass, resid: dict[int, Tensor], kind: str, layer: int,
        span: tuple[int, int], base: int, n_cols: int,
    ) -> Any:  # fmt: skip
        norm = bridge.block_norm_params(model, layer, "ln1")
        w, b = qkv_weights(model, layer, kind)
        block = run.mask[:, :, base + span[0] : base + span[1]]
        heads = block.any(0).any(0).nonzero().flatten().tolist()
        cols = [span[0] + h for h in heads]  # within the layer's q, k, v reader columns
        stage = 2 * layer + 1
        folded: dict[torch.dtype, tuple[Tensor, Tensor | None]] = {}

        def fn(act: Tensor, hook: Any) -> Tensor:
            x = resid[layer]
            if x.dtype not in folded:
                folded[x.dtype] = _fold(norm, w, b, x)
            wf, bf = folded[x.dtype]
            corr = run.corrections(stage, x, base, n_cols)
            full = _project(norm, x, wf.permute(1, 0, 2).reshape(wf.shape[1], -1), bf)
            full = full.view(act.shape)
            check_rebuild(act, full, f"a{layer} <{kind}> from its normalised input", self.tol)
            xh = torch.add(x, corr[cols] if len(cols) < corr.shape[0] else corr)
            new = _project(norm, xh.view(len(heads), -1, x.shape[-1]), wf[heads], None)
            new = new.view(len(heads), *act.shape[:2], -1).permute(1, 2, 0, 3)
            if bf is not None:
                new = new + bf.view(act.shape[2], -1)[heads]
            if len(heads) == act.shape[2]:
                return new.contiguous()
            out = act.clone()
            out[:, :, heads] = new
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


def _fold(
    norm: bridge.NormParams, w: Tensor, b: Tensor | None, like: Tensor
) -> tuple[Tensor, Tensor | None]:
    """``W`` ``[heads, d, e]`` with the norm's scale folded in, and the bias ``[heads * e]``
    with the norm's bias projected in: ``norm(x) @ W + b = unit(x) @ W' + b'``."""
    wf = w.to(like.device, like.dtype)
    if norm.weight is not None:
        wf = wf * norm.weight.to(wf)[None, :, None]
    bias = None if b is None else b.to(like.device, like.dtype).reshape(-1)
    if norm.bias is not None:
        nb = torch.einsum("d,hde->he", norm.bias.to(wf), w.to(wf)).reshape(-1)
        bias = nb if bias is None else bias + nb
    return wf.contiguous(), bias


def _project(norm: bridge.NormParams, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``unit(x) @ w (+ b)`` for ``x`` ``[..., n, d]`` and ``w`` ``[..., d, e]``; the norm's
    statistics are taken in float32 and applied to the (narrower) projection."""
    xf = x.float()
    if norm.kind == "LN":
        xf = xf - xf.mean(-1, keepdim=True)
    ms = torch.linalg.vector_norm(xf, dim=-1, keepdim=True).pow(2) / x.shape[-1]
    scale = torch.rsqrt(ms + norm.eps).to(x.dtype)
    out = torch.matmul(xf.to(x.dtype), w) * scale
    return out + b if b is not None else out


class _Pass:
    """One forward's bookkeeping for an :class:`EdgePatch`.

    Each writer's ``source - live`` output is stored once, when the writer runs, in a
    writer-major ``[writers, rows * pos * d_model]`` buffer; a stage's corrections
    ``sum_w mask[w, r] (source_w - live_w)`` for all its readers are then one (batched over
    mask groups) matrix product over the writers below it. Live outputs are summed as they
    arrive (once per writer, not once per reader) to check the residual rebuild at every
    patched stage."""

    def __init__(self, patch: EdgePatch, model: Any, lay: Layout, mask: Tensor) -> None:
        self.patch, self.model, self.lay, self.mask = patch, model, lay, mask
        stages = [lay.writer_stage(i) for i in range(len(lay.writers))]
        self.below = [sum(1 for s in stages if s < t) for t in range(2 * lay.n_layers + 2)]
        self.delta: Tensor | None = None
        self.live: Tensor | None = None
        self.values: Tensor | None = None  # writer-major [writers, rows, 1 or pos, d_model]
        self.mask_t: Tensor | None = None  # [groups, readers, writers] in the live dtype
        self.w_o: dict[int, Tensor] = {}
        self.corr: dict[int, Tensor] = {}

    def start(self, act: Tensor, hook: Any) -> None:
        b, p, d = act.shape
        g = self.mask.shape[0]
        if b % g:
            raise ValueError(
                f"the edge mask has {g} rows; a forward of {b} rows needs a multiple of them "
                "(row i uses mask row i // (rows / mask rows))"
            )
        vals = self.patch.values
        if self.patch.source != "zero" and vals is not None:
            vb, vp = vals.shape[:2]
            if b % vb or vp not in (1, p) or (self.patch.source == "corrupt" and vp != p):
                raise ValueError(
                    f"values cover [batch, pos]={[vb, vp]}, the forward has {[b, p]} (the "
                    "batch must be a multiple of the values' rows)"
                )
            self.values = vals.to(act.device, act.dtype).permute(2, 0, 1, 3).contiguous()
        else:
            self.values = None
        if self.mask_t is None or self.mask_t.dtype != act.dtype:
            self.mask_t = self.mask.transpose(1, 2).to(act.device, act.dtype)
        self.delta = act.new_empty(len(self.lay.writers), b * p * d)
        self.live = act
        self.corr.clear()
        self._put(0, act[None])

    def _put(self, col: int, live: Tensor) -> None:
        """Store ``source - live`` of the writers ``col .. col + n`` (``live``: [n, b, p, d])."""
        assert self.delta is not None
        n, b, p, d = live.shape
        dst = self.delta[col : col + n]
        if self.values is None:
            torch.neg(live.reshape(n, -1), out=dst)
            return
        vb = self.values.shape[1]
        src = self.values[col : col + n, None]  # [n, 1, vb, 1 or p, d]
        torch.sub(src, live.view(n, b // vb, vb, p, d), out=dst.view(n, b // vb, vb, p, d))

    def put_heads(self, layer: int) -> Any:
        col = 1 + layer * (self.lay.n_heads + 1)

        def fn(act: Tensor, hook: Any) -> None:
            b, p, h, e = act.shape
            if layer not in self.w_o:
                self.w_o[layer] = bridge.w_o(self.model, layer).to(act.dtype).contiguous()
            z = act.permute(2, 0, 1, 3).reshape(h, b * p, e)
            out = torch.bmm(z, self.w_o[layer]).view(h, b, p, -1)  # each head's z_h @ W_O[h]
            self._put(col, out)
            self.live = self.live + out.sum(0)

        return fn

    def put_mlp(self, layer: int) -> Any:
        col = (layer + 1) * (self.lay.n_heads + 1)

        def fn(act: Tensor, hook: Any) -> None:
            self._put(col, act[None])
            self.live = self.live + act

        return fn

    def corrections(
        self, stage: int, x: Tensor, r0: int, n: int
    ) -> Float[Tensor, "readers batch pos d_model"]:
        """Corrections of the readers ``r0 .. r0 + n`` (all read at ``stage``), after
        checking the residual rebuild there; once per stage and forward."""
        if stage in self.corr:
            return self.corr[stage]
        assert self.delta is not None and self.live is not None and self.mask_t is not None
        rebuilt = self.live + _attn_bias_sum(self.model, stage // 2, x)
        check_rebuild(x, rebuilt, f"the residual input at stage {stage}", self.patch.tol)
        k = self.below[stage]
        g = self.mask_t.shape[0]
        m = self.mask_t[:, r0 : r0 + n, :k]
        if g == 1:
            out = torch.mm(m[0], self.delta[:k])
        else:  # [n, groups, rest] from one product per group
            out = torch.einsum("gnk,kgr->ngr", m, self.delta[:k].view(k, g, -1))
        out = out.reshape(n, *x.shape)
        self.corr[stage] = out
        return out

    def resid_hook(self, stage: int, col: int) -> Any:
        def fn(act: Tensor, hook: Any) -> Tensor:
            return act + self.corrections(stage, act, col, 1)[0]

        return fn
