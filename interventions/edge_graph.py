"""The residual-stream edge graph of a model: writer/reader names, order and edge mask.

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
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interventions import bridge
from interventions.base import HookPair

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
    return make_layout(n_layers, n_heads, n_kv)


def make_layout(n_layers: int, n_heads: int, n_kv: int) -> Layout:
    """The layout of a pre-norm model of this shape (what :func:`layout` returns)."""
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
        self.forwards = 0  # forwards seen (the input hook counts them)

    def stacked(self, lay: Layout) -> Float[Tensor, "batch pos writers d_model"]:
        if self.input is None or len(self.mlps) != lay.n_layers:
            raise RuntimeError("no complete forward was captured")
        parts = [self.input[:, :, None]]
        for layer in range(lay.n_layers):
            parts += [self.heads[layer], self.mlps[layer][:, :, None]]
        return torch.cat(parts, dim=2)

    def writer_major(self, lay: Layout, rows: int | None = None) -> Tensor:
        """``[rows, writers, pos, d_model]`` (the first ``rows`` rows; all by default)."""
        if self.input is None or len(self.mlps) != lay.n_layers:
            raise RuntimeError("no complete forward was captured")
        parts = [self.input[:rows, None]]
        for layer in range(lay.n_layers):
            parts += [self.heads[layer][:rows].transpose(1, 2), self.mlps[layer][:rows, None]]
        return torch.cat(parts, dim=1)


def writer_capture_hooks(model: Any, store: WriterStore, detach: bool = True) -> list[HookPair]:
    """Hooks recording every writer's output of a forward into ``store``."""

    def keep(t: Tensor) -> Tensor:
        return t.detach() if detach else t

    def put_input(act: Tensor, hook: Any) -> None:
        store.input = keep(act)
        store.forwards += 1

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


def fold_norm(
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


def normalised_projection(
    norm: bridge.NormParams, x: Tensor, w: Tensor, b: Tensor | None
) -> Tensor:
    """``unit(x) @ w (+ b)`` for ``x`` ``[..., n, d]`` and ``w`` ``[..., d, e]``; the norm's
    statistics are taken in float32 and applied to the (narrower) projection."""
    xf = x.float()
    if norm.kind == "LN":
        xf = xf - xf.mean(-1, keepdim=True)
    ms = torch.linalg.vector_norm(xf, dim=-1, keepdim=True).pow(2) / x.shape[-1]
    scale = torch.rsqrt(ms + norm.eps).to(x.dtype)
    out = torch.matmul(xf.to(x.dtype), w) * scale
    return out + b if b is not None else out
