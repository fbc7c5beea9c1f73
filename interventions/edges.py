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
    fold_norm,
    layout,
    normalised_projection,
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
    recomputing that head's projection of the patched, normalised input; that the live
    q/k/v are such projections of the residual (a per-token map) is checked on the first
    four rows of each forward.

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
        if cols == list(range(cols[0], cols[0] + len(cols))):
            pick: Any = slice(cols[0], cols[0] + len(cols))
        else:
            pick = cols
        stage = 2 * layer + 1
        folded: dict[torch.dtype, tuple[Tensor, Tensor | None]] = {}

        def fn(act: Tensor, hook: Any) -> Tensor:
            x = resid[layer]
            if x.dtype not in folded:
                folded[x.dtype] = fold_norm(norm, w, b, x)
            wf, bf = folded[x.dtype]
            xh = run.corrections(stage, x, base, n_cols)  # [readers, b, p, d]: x + corrections
            rows = slice(0, _CHECK_ROWS)  # a per-token map: a few rows check the architecture
            flat = wf.permute(1, 0, 2).reshape(wf.shape[1], -1)  # [d, heads * e]
            full = normalised_projection(norm, x[rows], flat, bf)
            full = full.view(act[rows].shape)
            what = f"a{layer} <{kind}> from its normalised input"
            check_rebuild(act[rows], full, what, self.tol)
            sel = xh[pick].view(len(heads), -1, x.shape[-1])
            new = normalised_projection(norm, sel, wf[heads], None)
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


_CHECK_ROWS = 4  # rows of each forward on which q/k/v are checked to be projections of x


class _Pass:
    """One forward's bookkeeping for an :class:`EdgePatch`.

    Each writer's ``source - live`` output is stored once, when the writer runs, in a
    ``[groups, writers, rows/groups * pos * d_model]`` buffer (``groups``: the mask's rows); a
    stage's reader inputs ``x + sum_w mask[w, r] (source_w - live_w)`` are then one
    matrix product per mask group over the writers below the stage, written reader-major
    ``[readers, rows, pos, d_model]``. Live outputs are summed as they arrive (once per
    writer, not once per reader) to check the residual rebuild at every patched stage. Without
    grad, the buffers are reused by the next forward of the same shape."""

    def __init__(self, patch: EdgePatch, model: Any, lay: Layout, mask: Tensor) -> None:
        self.patch, self.model, self.lay, self.mask = patch, model, lay, mask
        stages = [lay.writer_stage(i) for i in range(len(lay.writers))]
        self.below = [sum(1 for s in stages if s < t) for t in range(2 * lay.n_layers + 2)]
        self.delta: Tensor | None = None
        self.work: Tensor | None = None  # the q/k/v stages' reader inputs (never returned)
        self.live = torch.zeros(())  # the live writers' sum so far
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
        shape = (g, len(self.lay.writers), (b // g) * p * d)
        self.delta = _reuse(self.delta, shape, act) if not torch.is_grad_enabled() else None
        self.chunks: list[Tensor] = []
        self.live = act
        self.corr.clear()
        self._put(0, act[None])

    def _put(self, col: int, live: Tensor) -> None:
        """Store ``source - live`` of the writers ``col .. col + n`` (``live``: [n, b, p, d])."""
        n, b, p, d = live.shape
        g = self.mask.shape[0]
        c = b // g
        if self.delta is None:  # with grad: no in-place buffer, chunks joined per stage
            dst = None
        else:  # [n, groups, rows/groups * p * d]
            dst = self.delta[:, col : col + n].transpose(0, 1)
        if self.values is None:
            if dst is None:
                self.chunks.append(-live.view(n, g, -1).transpose(0, 1))
            else:
                torch.neg(live.view(n, g, -1), out=dst)
            return
        vals = self.values[col : col + n]  # row i reads values[i % vb]
        vb, vp = vals.shape[1:3]
        shape: tuple[int, ...]
        if c % vb == 0:
            shape, src = (n, g, c // vb, vb, p, d), vals[:, None, None]
        elif vb % c == 0 and g % (vb // c) == 0:
            shape = (n, g // (vb // c), vb // c, c, p, d)
            src = vals.view(n, 1, vb // c, c, vp, d)
        else:
            shape = (n, g, c, p, d)
            src = vals[:, torch.arange(b, device=vals.device) % vb].view(n, g, c, vp, d)
        if dst is None:
            self.chunks.append((src - live.view(shape)).reshape(n, g, -1).transpose(0, 1))
        else:
            torch.sub(src, live.view(shape), out=dst.view(shape))

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
        self, stage: int, x: Tensor, r0: int, n: int, keep: bool = True
    ) -> Float[Tensor, "readers batch pos d_model"]:
        """``x`` plus the corrections of the readers ``r0 .. r0 + n`` (all read at
        ``stage``), after checking the residual rebuild there; once per stage and forward.
        ``keep``: the result stays inside the hooks (so a reused buffer may hold it)."""
        if stage in self.corr:
            return self.corr[stage]
        assert self.mask_t is not None
        delta = self.delta if self.delta is not None else torch.cat(self.chunks, 1)
        rebuilt = self.live + _attn_bias_sum(self.model, stage // 2, x)
        check_rebuild(x, rebuilt, f"the residual input at stage {stage}", self.patch.tol)
        k = self.below[stage]
        g = self.mask_t.shape[0]
        if keep:
            out = self.work = _reuse(self.work, (n, *x.shape), x)
        else:
            out = x.new_empty(n, *x.shape)
        m = self.mask_t[:, r0 : r0 + n, :k]
        xg, og = x.reshape(g, -1), out.view(n, g, -1)
        if g <= 32 and not torch.is_grad_enabled():  # one product per group, in place
            for i in range(g):
                torch.addmm(xg[i], m[i], delta[i, :k], out=og[:, i])
        else:
            og.copy_(torch.baddbmm(xg[:, None], m, delta[:, :k]).transpose(0, 1))
        self.corr[stage] = out
        return out

    def resid_hook(self, stage: int, col: int) -> Any:
        def fn(act: Tensor, hook: Any) -> Tensor:
            return self.corrections(stage, act, col, 1, keep=False)[0]

        return fn


def _reuse(buf: Tensor | None, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """``buf`` when it has ``shape`` and grad is off (nothing can still hold it); else new."""
    if (
        buf is not None
        and not torch.is_grad_enabled()
        and tuple(buf.shape) == shape
        and buf.dtype == like.dtype
        and buf.device == like.device
    ):
        return buf
    return like.new_empty(shape)
