"""The logit lens's decode kernel: a stack of residual vectors -> top-k, entropy, targets.

Vectors are normalized by the model's final norm (statistics recomputed from each vector) and
multiplied by ``W_U`` one tile at a time: ``chunk_size`` rows times a block of the vocabulary
small enough that the tile and its ``exp`` stay in the CPU cache (:data:`BLOCK_FLOATS`).
Every statistic is accumulated across the vocabulary blocks, so neither the ``[rows, vocab]``
logits nor a ``[chunk, vocab]`` buffer ever exists:

* softmax: per block its own maximum ``m_b``, ``S_b = sum exp(z - m_b)`` and
  ``T_b = sum exp(z - m_b) (z - m_b)``; once per chunk they are rescaled to the row maximum
  ``m`` (``S = sum_b S_b exp(m_b - m)``, ``T = sum_b exp(m_b - m) (T_b + (m_b - m) S_b)``);
  entropy ``log S - T / S``;
* top-k, running: each block contributes only the logits at or above the current k-th largest
  (usually a handful), merged by a stable sort, ties going to the lower token id;
* target ranks, exact: the number of logits strictly above the target's own logit, counted on
  the raw logits block by block against a narrow window around an estimate of the target logit;
  the few logits inside the window are kept and compared with the target's logit once its
  block has been computed (see :class:`_Ranks`).

One home for the chunk sizing of every full-vocabulary readout (:func:`chunk_rows`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interventions import bridge
from lens.readout.core import final_norm

Norm = Literal["recompute", "none"]
NORMS: tuple[Norm, ...] = ("recompute", "none")
CHUNK_FLOATS = 1 << 24  # rows x vocab floats of one chunk buffer (64 MB of float32)
# rows x vocabulary-block floats of one decode tile: 1 MB of float32, one core's L2 (measured
# on the SmolLM2 vocabulary, decode alone: 2**16..2**19 within noise, 2**20..2**22 slower)
BLOCK_FLOATS = 1 << 18
GROUP = 64  # tokens per group maximum in the running top-k (see _TopK)
LOG2_E, LN_2 = 1.4426950408889634, 0.6931471805599453  # exp(x) = 2 ** (x log2 e)


def chunk_rows(model: Any, floats: int = CHUNK_FLOATS) -> int:
    """Rows per decode chunk so that one ``[rows, d_vocab]`` float32 buffer holds ``floats``.

    Example:
        >>> import lens
        >>> chunk_rows(lens.load_model(lens.tiny_config("llama")))  # vocab 257
        65280
    """
    return max(1, floats // int(model.cfg.d_vocab))


@torch.no_grad()
def decode_stack(
    model: Any,
    h: Float[Tensor, "rows d_model"],
    *,
    top_k: int = 10,
    target_ids: Int[Tensor, " rows"] | None = None,
    category_matrix: Float[Tensor, "d_vocab category"] | None = None,
    norm: Norm = "recompute",
    chunk_size: int = 256,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    block_size: int | None = None,
) -> dict[str, Tensor]:
    """Decode a stack of residual vectors, ``chunk_size`` rows x ``block_size`` tokens at a time.

    For each row with logits ``z`` (``m`` its maximum, ``e = exp(z - m)``, ``S = sum e``):
    probabilities ``e / S``, entropy ``log S - sum(e (z - m)) / S`` (nats), accumulated in
    float32 (also for bf16/fp16 models) over vocabulary blocks. ``target_ranks`` counts the
    logits strictly above the target's; top-k ties go to the lower token id.

    Extra memory: two ``chunk_size x block_size`` float32 tiles (``block_size`` defaults to
    ``BLOCK_FLOATS // chunk_size``) and a few floats per row, whatever the vocabulary.

    Returns:
        ``top_ids``/``top_probs`` ``[rows, k]``, ``entropy`` ``[rows]`` (nats), and when asked
        ``target_probs``/``target_ranks`` ``[rows]`` and ``category_mass`` ``[rows, category]``.

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("gpt2"))
        >>> from lens.readout.kernel import decode_stack
        >>> out = decode_stack(model, torch.randn(4, 64), top_k=2)
        >>> out["top_ids"].shape, out["entropy"].shape
        (torch.Size([4, 2]), torch.Size([4]))
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if weight is None:
        weight, bias = unembed_parts(model)
    vocab = weight.shape[0]
    if not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be in 1..{vocab} (the vocabulary), got {top_k}")
    h = h.to(weight.dtype)  # float32 throughout, also for bf16/fp16 models
    x = final_norm(model, h) if norm == "recompute" else h
    cap = getattr(model.cfg, "output_logits_soft_cap", -1.0)
    cap = float(cap) if cap is not None and cap > 0 else None
    rows = max(1, min(chunk_size, x.shape[0]))
    block = block_size or max(1, BLOCK_FLOATS // rows)
    tile = _Tile(weight, bias, cap, rows, block)
    parts: dict[str, list[Tensor]] = {}
    for start in range(0, x.shape[0], rows):
        t = None if target_ids is None else target_ids[start : start + rows].to(x.device)
        out = _decode_chunk(tile, x[start : start + rows], top_k, t, category_matrix)
        for key, value in out.items():
            parts.setdefault(key, []).append(value)
    if not parts:  # no rows
        return _empty(x, top_k, target_ids is not None, category_matrix)
    return {k: torch.cat(v) for k, v in parts.items()}


class _Tile:
    """The logits of one ``rows x block`` tile, written into a buffer allocated once."""

    def __init__(
        self, weight: Tensor, bias: Tensor | None, cap: float | None, rows: int, block: int
    ):
        self.weight, self.bias, self.cap, self.block = weight, bias, cap, block
        self.vocab = weight.shape[0]
        size = rows * min(block, self.vocab)
        self.z_buf = torch.empty(size, dtype=weight.dtype, device=weight.device)
        self.e_buf = torch.empty_like(self.z_buf)

    def logits(self, x: Tensor, v0: int) -> tuple[Tensor, Tensor]:
        """Logits of ``x`` for tokens ``v0 .. v0 + block`` (a contiguous tile) and a tile
        of the same shape to write into."""
        w = self.weight[v0 : v0 + self.block]
        n = x.shape[0] * w.shape[0]
        z = self.z_buf[:n].view(x.shape[0], w.shape[0])
        torch.matmul(x, w.T, out=z)
        if self.bias is not None:
            z.add_(self.bias[v0 : v0 + self.block])
        if self.cap is not None:
            z.div_(self.cap).tanh_().mul_(self.cap)
        return z, self.e_buf[:n].view_as(z)

    def logit_rows(self, x: Tensor) -> Tensor:
        """Full logits of a few rows (the rank fallback): the same arithmetic, untiled."""
        z = x @ self.weight.T
        if self.bias is not None:
            z = z + self.bias
        return z if self.cap is None else torch.tanh(z / self.cap) * self.cap


def _decode_chunk(
    tile: _Tile, x: Tensor, k: int, targets: Tensor | None, categories: Tensor | None
) -> dict[str, Tensor]:
    n, n_blocks = x.shape[0], -(-tile.vocab // tile.block)
    top = _TopK(n, k, x)
    ranks = None if targets is None else _Ranks(tile, x, targets)
    # per block: its own maximum m_b, s_b = sum exp(z - m_b), t_b = sum exp(z - m_b)(z - m_b)
    m_b, s_b, t_b = x.new_empty(3, n_blocks, n).unbind(0)
    mass_b = None if categories is None else x.new_empty(n_blocks, n, categories.shape[1])
    for b, v0 in enumerate(range(0, tile.vocab, tile.block)):
        z, e = tile.logits(x, v0)
        group_max = top.add(z, v0)  # on the raw logits: exact comparisons
        torch.amax(group_max, -1, out=m_b[b])
        if ranks is not None:
            ranks.add(z, v0)
        # exp(z - m_b) as exp2((z - m_b) log2 e): z - m_b <= 0 cannot overflow, and exp2 keeps
        # its speed where exp slows down ~7x on logits far below the maximum (< -87, common in
        # trained models); the rounding of the product is ~1 ulp of the exponent
        torch.exp2(z.sub_(m_b[b, :, None]).mul_(LOG2_E), out=e)
        torch.sum(e, -1, out=s_b[b])
        if mass_b is not None and categories is not None:
            torch.matmul(e, categories[v0 : v0 + z.shape[1]].to(e), out=mass_b[b])
        torch.sum(e.mul_(z), -1, out=t_b[b])  # e is not read again; t_b in units of log2 e
    t_b.mul_(LN_2)
    # combine the blocks against the row maximum m: each block's sums scale by exp(m_b - m)
    m = m_b.amax(0)
    shift = m_b - m
    scale = torch.exp(shift)
    s = (s_b * scale).sum(0)
    t = (scale * (t_b + shift * s_b)).sum(0)  # sum exp(z - m)(z - m)
    mass = None if mass_b is None else (mass_b * scale[:, :, None]).sum(0)
    values, ids = top.result()
    out = {
        "top_ids": ids,
        "top_probs": torch.exp(values - m[:, None]) / s[:, None],
        "entropy": s.log() - t / s,
    }
    if ranks is not None:
        z_t, out["target_ranks"] = ranks.result()
        out["target_probs"] = torch.exp(z_t - m) / s
    if mass is not None:
        out["category_mass"] = mass / s[:, None]
    return out


class _TopK:
    """Running top-k over vocabulary blocks, ties to the lower id.

    A block contributes the logits ``>=`` the current k-th largest value (the threshold), so
    every logit that could enter the top-k, ties included, is kept; candidates are merged into
    the running top-k by a stable sort once enough have gathered (the threshold rises with
    each merge). Merged entries are ordered by value, then by position in the concatenation
    (running entries first, then candidates in token order), which is token-id order.

    Candidates are found through the maxima of groups of :data:`GROUP` tokens: only the few
    groups whose maximum reaches the threshold are compared element by element (a comparison
    and ``nonzero`` over the whole tile cost ten times its maximum)."""

    def __init__(self, n: int, k: int, like: Tensor):
        self.n, self.k = n, k
        self.values = torch.full((n, k), float("-inf"), dtype=like.dtype, device=like.device)
        self.ids = torch.full((n, k), -1, dtype=torch.long, device=like.device)
        self.threshold = self.values[:, -1].clone()
        self.pending: list[tuple[Tensor, Tensor, Tensor]] = []
        self.n_pending = 0
        self.row_of_entry = torch.arange(n, device=like.device).repeat_interleave(k)

    def add(self, z: Tensor, v0: int) -> Tensor:
        """Take the candidates of one tile; returns its group maxima ``[rows, groups]``
        (their maximum is each row's block maximum)."""
        if v0 == 0 and z.shape[1] >= self.k:  # k-th value of the first block: exact
            self.threshold = z.topk(self.k, dim=-1, sorted=False).values.amin(-1)
        width = z.shape[1] - z.shape[1] % GROUP
        parts = []
        if width:
            grouped = z[:, :width].view(z.shape[0], -1, GROUP)
            group_max = grouped.amax(-1)
            row, group = (group_max >= self.threshold[:, None]).nonzero(as_tuple=True)
            if row.shape[0]:
                cand = grouped[row, group]  # [hot groups, GROUP]
                i, col = (cand >= self.threshold[row, None]).nonzero(as_tuple=True)
                parts.append((row[i], cand[i, col], group[i] * GROUP + col + v0))
        if width < z.shape[1]:  # the last few tokens of the block, outside every group
            tail = z[:, width:]
            row, col = (tail >= self.threshold[:, None]).nonzero(as_tuple=True)
            parts.append((row, tail[row, col], col + width + v0))
            tail_max = tail.amax(-1, keepdim=True)
            group_max = torch.cat([group_max, tail_max], 1) if width else tail_max
        for row, value, ids in parts:
            if row.shape[0]:
                self.pending.append((row, value, ids))
                self.n_pending += row.shape[0]
        if self.n_pending >= self.n * self.k:
            self._merge()
        return group_max

    def _merge(self) -> None:
        if not self.n_pending:
            return
        rows = torch.cat([self.row_of_entry, *(p[0] for p in self.pending)])
        values = torch.cat([self.values.flatten(), *(p[1] for p in self.pending)])
        ids = torch.cat([self.ids.flatten(), *(p[2] for p in self.pending)])
        self.pending, self.n_pending = [], 0
        order = torch.sort(values, descending=True, stable=True).indices
        order = order[torch.sort(rows[order], stable=True).indices]
        counts = torch.bincount(rows, minlength=self.n)
        first = torch.cumsum(counts, 0) - counts
        slot = torch.arange(order.shape[0], device=order.device) - first[rows[order]]
        keep = order[slot < self.k]  # every row holds >= k entries: k running ones
        self.values = values[keep].view(self.n, self.k)
        self.ids = ids[keep].view(self.n, self.k)
        self.threshold = self.values[:, -1]

    def result(self) -> tuple[Tensor, Tensor]:
        self._merge()
        return self.values, self.ids


class _Ranks:
    """Exact target ranks: ``#{j : z_j > z_t}`` over the tiled float32 logits.

    The target logit ``z_t`` is only known once its block is computed, so each block is
    compared with a window ``[lo, hi]`` around an estimate of ``z_t`` (a separate dot product)
    wide enough to contain ``z_t`` (twice the float32 error bound of a length-``d`` dot
    product): logits above ``hi`` are counted, the few inside the window are kept with their
    ids and compared with ``z_t`` at the end. A row whose ``z_t`` falls outside its window
    (arithmetic less precise than float32, e.g. TF32) is recounted from its full logits."""

    def __init__(self, tile: _Tile, x: Tensor, targets: Tensor):
        self.tile, self.x, self.targets = tile, x, targets
        w_t = tile.weight[targets]
        est = (x * w_t).sum(-1)
        bound = (x.abs() * w_t.abs()).sum(-1)
        if tile.bias is not None:
            est, bound = est + tile.bias[targets], bound + tile.bias[targets].abs()
        if tile.cap is not None:  # tanh is 1-Lipschitz: the window only shrinks
            est = torch.tanh(est / tile.cap) * tile.cap
        u = torch.finfo(x.dtype).eps / 2
        delta = 2 * (x.shape[1] + 2) * u * bound + 8 * u * est.abs() + torch.finfo(x.dtype).tiny
        self.lo, self.hi = est - delta, est + delta
        self.above = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        self.window: list[tuple[Tensor, Tensor, Tensor]] = []

    def add(self, z: Tensor, v0: int) -> None:
        above = z > self.hi[:, None]
        self.above += above.sum(-1)
        row, col = ((z >= self.lo[:, None]) & ~above).nonzero(as_tuple=True)
        self.window.append((row, z[row, col], col + v0))

    def result(self) -> tuple[Tensor, Tensor]:
        """The target logits and ranks."""
        row, value, ids = (torch.cat(p) for p in zip(*self.window, strict=True))
        n = self.x.shape[0]
        own = ids == self.targets[row]
        z_t = torch.full((n,), float("nan"), dtype=value.dtype, device=value.device)
        z_t[row[own]] = value[own]
        found = torch.zeros(n, dtype=torch.bool, device=value.device)
        found[row[own]] = True
        ranks = self.above.index_add(0, row, (value > z_t[row]).long())
        missing = (~found).nonzero().flatten()
        if missing.numel():
            z = self.tile.logit_rows(self.x[missing])
            z_t[missing] = z.gather(1, self.targets[missing, None])[:, 0]
            ranks[missing] = (z > z_t[missing, None]).sum(-1)
        return z_t, ranks


def _empty(x: Tensor, k: int, targets: bool, categories: Tensor | None) -> dict[str, Tensor]:
    out = {
        "top_ids": torch.empty(0, k, dtype=torch.long, device=x.device),
        "top_probs": torch.empty(0, k, dtype=x.dtype, device=x.device),
        "entropy": torch.empty(0, dtype=x.dtype, device=x.device),
    }
    if targets:
        out["target_probs"] = torch.empty(0, dtype=x.dtype, device=x.device)
        out["target_ranks"] = torch.empty(0, dtype=torch.long, device=x.device)
    if categories is not None:
        out["category_mass"] = torch.empty(0, categories.shape[1], dtype=x.dtype, device=x.device)
    return out


def unembed_parts(model: Any) -> tuple[Tensor, Tensor | None]:
    """W_U as [vocab, d_model] and b_U, in float32 (converted once when the model is not);
    an all-zero b_U (TransformerLens's native Llama) is returned as None: adding it is a no-op."""
    head = bridge.unembed_module(model)
    weight = head.weight.detach()
    bias = getattr(head, "bias", None)
    bias = None if bias is None or not bool(bias.detach().any()) else bias.detach().float()
    return weight.float(), bias
