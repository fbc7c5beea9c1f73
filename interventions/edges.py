"""The residual-stream edge graph of a model, and edge patching (:class:`EdgePatch`).

Writers put a vector into the residual stream: ``input`` (the embedding, positional one
included), every attention head ``a{l}.h{h}`` (its ``z`` through its slice of ``W_O``) and
every MLP ``m{l}``. Readers take the residual stream in: every head's query input
``a{l}.h{h}<q>``, every key/value head's key and value inputs (``a{l}.h{j}<k>`` without grouped
queries, ``a{l}.kv{j}<k>`` with them: never ungrouped), every MLP input ``m{l}`` and
``logits``. An edge ``w -> r`` exists when ``w`` is computed before ``r`` reads; attention
biases ``b_O`` are constants of the residual sum, not writers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interventions import bridge
from interventions._common import tensor_from_json, tensor_to_json
from interventions.base import HookPair, register

_READER = re.compile(r"^a(\d+)\.(h|kv)(\d+)<([qkv])>$")
_HEAD = re.compile(r"^a(\d+)\.h(\d+)$")
_MLP = re.compile(r"^m(\d+)$")


@dataclass(frozen=True)
class Layout:
    """Names and order of a model's writers and readers, and which edges exist."""

    n_layers: int
    n_heads: int
    n_kv: int
    parallel: bool
    writers: list[str] = field(default_factory=list)
    readers: list[str] = field(default_factory=list)

    @property
    def kv_tag(self) -> str:
        return "h" if self.n_kv == self.n_heads else "kv"

    def writer_index(self, name: str) -> int:
        try:
            return self.writers.index(name)
        except ValueError:
            raise KeyError(_unknown(name, "writer", self)) from None

    def reader_index(self, name: str) -> int:
        try:
            return self.readers.index(name)
        except ValueError:
            raise KeyError(_unknown(name, "reader", self)) from None

    def writer_stage(self, index: int) -> int:
        """0 for ``input``; ``2l+1`` for layer ``l``'s heads, ``2l+2`` for its MLP."""
        if index == 0:
            return 0
        layer, within = divmod(index - 1, self.n_heads + 1)
        return 2 * layer + (1 if within < self.n_heads else 2)

    def reader_stage(self, index: int) -> int:
        """Readers see writers whose stage is below this number."""
        if index == len(self.readers) - 1:
            return 2 * self.n_layers + 1
        layer, within = divmod(index, self.n_heads + 2 * self.n_kv + 1)
        if within < self.n_heads + 2 * self.n_kv or self.parallel:
            return 2 * layer + 1
        return 2 * layer + 2

    def mask(self) -> Bool[Tensor, "writers readers"]:
        """``mask[w, r]`` is True where the edge ``w -> r`` exists."""
        ws = torch.tensor([self.writer_stage(i) for i in range(len(self.writers))])
        rs = torch.tensor([self.reader_stage(j) for j in range(len(self.readers))])
        return ws[:, None] < rs[None, :]

    def reader_parts(self, name: str) -> tuple[str, int, int]:
        """``(kind, layer, head)``: kind ``q``/``k``/``v`` (head = query or key/value head),
        ``mlp`` or ``logits`` (head -1; layer -1 for logits)."""
        self.reader_index(name)
        if name == "logits":
            return "logits", -1, -1
        m = _MLP.match(name)
        if m:
            return "mlp", int(m.group(1)), -1
        r = _READER.match(name)
        assert r is not None
        return r.group(4), int(r.group(1)), int(r.group(3))


def _unknown(name: str, what: str, lay: Layout) -> str:
    pool = lay.writers if what == "writer" else lay.readers
    return (
        f"unknown {what} node {name!r}; this model's {what}s are {pool[0]!r} .. {pool[-1]!r} "
        f"({lay.n_layers} layers, {lay.n_heads} heads, {lay.n_kv} key/value heads per layer)"
    )


def check_supported(model: Any) -> None:
    """Raise where reader inputs are not a plain sum of writer outputs."""
    if bool(getattr(model.cfg, "parallel_attn_mlp", False)):
        raise ValueError(
            "parallel attention+MLP blocks are not supported by edge patching: both read the "
            "same layer input, so the MLP input cannot be rebuilt from this layer's heads"
        )
    for layer in range(int(model.cfg.n_layers)):
        if bridge.output_norms(model, layer):
            raise ValueError(
                f"layer {layer} normalises its attention/MLP output before the residual add "
                f"({bridge.output_norms(model, layer)}), so a head's residual contribution is not "
                "z @ W_O; edge graphs need pre-norm blocks"
            )


def layout(model: Any) -> Layout:
    """The writer/reader layout of ``model``.

    Example:
        >>> import lens
        >>> lay = layout(lens.load_model(lens.tiny_config("llama")))
        >>> lay.writers[:3], lay.readers[4:6], len(lay.readers)
        (['input', 'a0.h0', 'a0.h1'], ['a0.kv0<k>', 'a0.kv1<k>'], 28)
    """
    check_supported(model)
    n_layers, n_heads = int(model.cfg.n_layers), bridge.n_heads(model)
    n_kv = int(getattr(model.cfg, "n_key_value_heads", None) or n_heads)
    lay = Layout(n_layers, n_heads, n_kv, False)
    tag = lay.kv_tag
    for layer in range(n_layers):
        lay.writers.extend(f"a{layer}.h{h}" for h in range(n_heads))
        lay.writers.append(f"m{layer}")
        lay.readers.extend(f"a{layer}.h{h}<q>" for h in range(n_heads))
        lay.readers.extend(f"a{layer}.{tag}{j}<k>" for j in range(n_kv))
        lay.readers.extend(f"a{layer}.{tag}{j}<v>" for j in range(n_kv))
        lay.readers.append(f"m{layer}")
    lay.writers.insert(0, "input")
    lay.readers.append("logits")
    return lay


def head_outputs(model: Any, layer: int, z: Tensor) -> Float[Tensor, "batch pos heads d_model"]:
    """Each head's residual contribution ``z_h @ W_O[h]`` (no bias)."""
    w = bridge.w_o(model, layer).to(z.dtype)
    return torch.einsum("bphe,hed->bphd", z, w)


def qkv_weights(model: Any, layer: int, kind: str) -> tuple[Tensor, Tensor | None]:
    """``W_{Q,K,V}`` ``[heads, d_model, d_head]`` and bias of layer ``layer``."""
    attn = model.blocks[layer].attn
    w = getattr(attn, f"W_{kind.upper()}")
    b = getattr(attn, f"b_{kind.upper()}", None)
    return w, b


def _attn_bias_sum(model: Any, upto: int, like: Tensor) -> Tensor:
    total = torch.zeros((), dtype=like.dtype, device=like.device)
    for layer in range(upto):
        b = bridge.b_o(model, layer)
        if b is not None:
            total = total + b.to(like.device, like.dtype)
    return total


class WriterStore:
    """Writer outputs of one forward, filled by :func:`writer_capture_hooks` layer by layer."""

    def __init__(self) -> None:
        self.input: Tensor | None = None
        self.heads: dict[int, Tensor] = {}  # layer -> [batch, pos, heads, d_model]
        self.mlps: dict[int, Tensor] = {}  # layer -> [batch, pos, d_model]

    def stacked(self, lay: Layout) -> Float[Tensor, "batch pos writers d_model"]:
        if self.input is None or len(self.mlps) != lay.n_layers:
            raise RuntimeError("no complete forward was captured")
        parts = [self.input[:, :, None]]
        for layer in range(lay.n_layers):
            parts += [self.heads[layer], self.mlps[layer][:, :, None]]
        return torch.cat(parts, dim=2)

    def upto(self, lay: Layout, stage: int) -> list[tuple[int, Tensor]]:
        """(writer index, output ``[batch, pos, d_model]``) of every writer below ``stage``."""
        assert self.input is not None
        out = [(0, self.input)]
        for layer in range(lay.n_layers):
            base = 1 + layer * (lay.n_heads + 1)
            if 2 * layer + 1 < stage and layer in self.heads:
                out += [(base + h, self.heads[layer][:, :, h]) for h in range(lay.n_heads)]
            if 2 * layer + 2 < stage and layer in self.mlps:
                out.append((base + lay.n_heads, self.mlps[layer]))
        return out


def writer_capture_hooks(model: Any, store: WriterStore, detach: bool = True) -> list[HookPair]:
    """Hooks recording every writer's output of a forward into ``store``."""

    def keep(t: Tensor) -> Tensor:
        return t.detach() if detach else t

    def put_input(act: Tensor, hook: Any) -> None:
        store.input = keep(act)

    def put_heads(layer: int) -> Any:
        def fn(act: Tensor, hook: Any) -> None:
            store.heads[layer] = keep(head_outputs(model, layer, act))

        return fn

    def put_mlp(layer: int) -> Any:
        def fn(act: Tensor, hook: Any) -> None:
            store.mlps[layer] = keep(act)

        return fn

    pairs: list[HookPair] = [("blocks.0.hook_resid_pre", put_input)]
    for layer in range(int(model.cfg.n_layers)):
        pairs.append((bridge.z_hook(layer), put_heads(layer)))
        pairs.append((f"blocks.{layer}.hook_mlp_out", put_mlp(layer)))
    return pairs


def check_rebuild(x: Tensor, rebuilt: Tensor, what: str, tol: float) -> None:
    """Raise unless ``rebuilt`` equals ``x`` within ``tol`` (relative to x's scale)."""
    err = float((x - rebuilt).abs().max()) if x.numel() else 0.0
    scale = 1.0 + float(x.abs().max()) if x.numel() else 1.0
    if not err <= tol * scale:
        raise ValueError(
            f"edge patching cannot rebuild {what} from the residual sum of writer outputs "
            f"(max difference {err:.3g} > {tol:g} x {scale:.3g}); this architecture adds "
            "something to the residual stream that is not a head, an MLP, the input or b_O"
        )


Source = Literal["corrupt", "zero"]


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
            ``[batch, pos, writers, d_model]`` (``lens.circuits.writer_outputs``);
            ``"zero"``: remove the writers' contributions.
        values: required for ``source="corrupt"``.
        tol: rebuild tolerance.

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> patch = EdgePatch([("a0.h1", "a1.kv0<k>"), ("input", "logits")], source="zero")
        >>> with lens.apply(model, patch):
        ...     logits = model(torch.tensor([[1, 2, 3]]))
        >>> tuple(logits.shape)
        (1, 3, 512)
    """

    edges: Sequence[tuple[str, str]]
    source: Source = "corrupt"
    values: Tensor | None = None
    tol: float = 1e-5

    def __post_init__(self) -> None:
        self.edges = [(str(w), str(r)) for w, r in self.edges]
        if self.source not in ("corrupt", "zero"):
            raise ValueError(f"source must be 'corrupt' or 'zero', got {self.source!r}")
        if self.source == "corrupt" and self.values is None:
            raise ValueError(
                "source='corrupt' needs values= (the corrupted run's writer outputs, "
                "[batch, pos, writers, d_model]; see lens.circuits.writer_outputs)"
            )
        if self.values is not None and self.values.ndim != 4:
            raise ValueError(
                f"values must be [batch, pos, writers, d_model], got {tuple(self.values.shape)}"
            )

    def _by_reader(self, lay: Layout) -> dict[int, list[int]]:
        mask = lay.mask()
        out: dict[int, list[int]] = {}
        for w, r in self.edges:
            wi, ri = lay.writer_index(w), lay.reader_index(r)
            if not bool(mask[wi, ri]):
                raise ValueError(f"there is no edge {w} -> {r}: {w} is computed after {r} reads")
            out.setdefault(ri, []).append(wi)
        return out

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
        by_reader = self._by_reader(lay)
        store = WriterStore()
        resid: dict[int, Tensor] = {}
        pairs = writer_capture_hooks(model, store, detach=False)
        layers = sorted({lay.reader_parts(lay.readers[r])[1] for r in by_reader} - {-1})
        for layer in layers:
            pairs.append((f"blocks.{layer}.hook_resid_pre", _keep(resid, layer)))
        groups: dict[tuple[str, int], dict[int, list[int]]] = {}
        for ri, ws in by_reader.items():
            kind, layer, head = lay.reader_parts(lay.readers[ri])
            groups.setdefault((kind, layer), {})[ri if kind in ("mlp", "logits") else head] = ws
        for (kind, layer), heads in groups.items():
            if kind == "mlp":
                (ws,) = heads.values()
                pairs.append(
                    (
                        f"blocks.{layer}.ln2.hook_in",
                        self._resid_hook(model, lay, store, ws, 2 * layer + 2, f"m{layer}"),
                    )
                )
            elif kind == "logits":
                (ws,) = heads.values()
                stage = 2 * lay.n_layers + 1
                pairs.append(
                    ("ln_final.hook_in", self._resid_hook(model, lay, store, ws, stage, "logits"))
                )
            else:
                hook = self._qkv_hook(model, lay, store, resid, kind, layer, heads)
                pairs.append((f"blocks.{layer}.attn.hook_{kind}", hook))
        return pairs

    def _correction(self, lay: Layout, store: WriterStore, ws: list[int], like: Tensor) -> Tensor:
        outputs = dict(store.upto(lay, 10**9))
        total = torch.zeros_like(like)
        for wi in ws:
            total = total - outputs[wi]
            if self.values is not None and self.source == "corrupt":
                if tuple(self.values.shape[:2]) != tuple(like.shape[:2]):
                    raise ValueError(
                        f"values cover [batch, pos]={list(self.values.shape[:2])}, the forward "
                        f"has {list(like.shape[:2])}"
                    )
                total = total + self.values[:, :, wi].to(like.device, like.dtype)
        return total

    def _rebuilt(self, model: Any, lay: Layout, store: WriterStore, stage: int, x: Tensor) -> None:
        outs = store.upto(lay, stage)
        layers_done = (stage - 1) // 2
        rebuilt = sum((o for _, o in outs), torch.zeros_like(x)) + _attn_bias_sum(
            model, layers_done, x
        )
        check_rebuild(x, rebuilt, f"the residual input at stage {stage}", self.tol)

    def _resid_hook(
        self, model: Any, lay: Layout, store: WriterStore, ws: list[int], stage: int, what: str
    ) -> Any:
        def fn(act: Tensor, hook: Any) -> Tensor:
            self._rebuilt(model, lay, store, stage, act)
            return act + self._correction(lay, store, ws, act)

        return fn

    def _qkv_hook(
        self,
        model: Any,
        lay: Layout,
        store: WriterStore,
        resid: dict[int, Tensor],
        kind: str,
        layer: int,
        heads: dict[int, list[int]],
    ) -> Any:
        norm = bridge.block_norm_params(model, layer, "ln1")
        w, b = qkv_weights(model, layer, kind)

        def fn(act: Tensor, hook: Any) -> Tensor:
            x = resid[layer]
            self._rebuilt(model, lay, store, 2 * layer + 1, x)
            base = torch.einsum("bpd,hde->bphe", norm.apply(x), w.to(x.dtype))
            if b is not None:
                base = base + b.to(x.dtype)
            check_rebuild(act, base, f"a{layer} <{kind}> from its normalised input", self.tol)
            out = act.clone()
            for head, ws in heads.items():
                xh = norm.apply(x + self._correction(lay, store, ws, x))
                new = xh @ w[head].to(x.dtype)
                out[:, :, head] = new + (b[head].to(x.dtype) if b is not None else 0.0)
            return out

        return fn

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "edges": [list(e) for e in self.edges],
            "source": self.source,
            "values": None if self.values is None else tensor_to_json(self.values),
            "tol": self.tol,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> EdgePatch:
        values = spec.get("values")
        return cls(
            [tuple(e) for e in spec["edges"]],  # type: ignore[misc]
            source=spec["source"],
            values=None if values is None else tensor_from_json(values),
            tol=float(spec.get("tol", 1e-5)),
        )


def _keep(sink: dict[int, Tensor], layer: int) -> Any:
    def fn(act: Tensor, hook: Any) -> None:
        sink[layer] = act

    return fn
