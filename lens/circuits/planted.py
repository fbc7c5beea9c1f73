"""A hand-set induction model whose circuit is known by construction, and edge AUROC.

:func:`induction_model` builds a 2-layer GPT-2-family bridge (16 tokens, 16 positions,
``d_model`` 80) by hand. Residual dimensions: 0-15 token one-hot, 16-31 position one-hot,
32-47 "previous token" (written by ``a0.h0``), 48-63 "output" (written by ``a1.h0``, the only
dimensions the unembedding reads), 64-79 junk (the only dimensions distractors write).

* ``a0.h0`` (previous-token head): query = position p, key = position p' + 1, so it attends to
  p - 1; its value copies the token there into 32-47.
* ``a1.h0`` (induction head): query = current token, key = the previous-token dimensions
  (K-composition with ``a0.h0``), so it attends to the position right after an earlier
  occurrence of the current token; its value copies that position's token into 48-63.
* ``a0.h1..3``, ``a1.h1..3`` and both MLPs are random and write into the junk dimensions only.

On pairs ``A + A[:k]`` (clean; the answer is ``A[k]``) vs ``B + A[:k]`` (corrupt, ``B``
disjoint from ``A``) the edges that carry the clean/corrupt difference are
:data:`INDUCTION_EDGES`. The positional edges into ``a0.h0``'s query and key are in the
construction too, but identical in both runs, so no contrast of this task can score them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Bool
from torch import Tensor

from interventions import bridge
from lens.circuits.graph import Graph

VOCAB, CTX, D_MODEL, D_HEAD = 16, 16, 80, 16
INDUCTION_EDGES = [
    ("input", "a0.h0<v>"),
    ("a0.h0", "a1.h0<k>"),
    ("input", "a1.h0<v>"),
    ("a1.h0", "logits"),
]


def _head(layer_attn: Any, head: int, q: Tensor, k: Tensor, v: Tensor, o: Tensor) -> None:
    """Write one head's ``[d_head, d_model]`` q/k/v rows and ``[d_model, d_head]`` o columns."""
    rows = slice(head * D_HEAD, (head + 1) * D_HEAD)
    for name, w in (("q", q), ("k", k), ("v", v)):
        bridge.original(getattr(layer_attn, name)).weight[rows] = w
    bridge.original(layer_attn.o).weight[:, rows] = o


def induction_model(*, beta: float = 3.0, seed: int = 0) -> Any:
    """The planted induction model (see the module docstring); ``beta`` sharpens attention.

    Example:
        >>> m = induction_model()
        >>> clean, corrupt, answer, wrong = induction_pairs(4)
        >>> bool((m(torch.tensor(clean))[:, -1].argmax(-1) == torch.tensor(answer)).all())
        True
    """
    import lens

    cfg = lens.tiny_config(
        "gpt2", n_layers=2, d_model=D_MODEL, n_heads=4, d_head=D_HEAD, d_vocab=VOCAB,
        n_ctx=CTX, d_mlp=32,
    )  # fmt: skip
    model = lens.load_model(cfg)
    gen = torch.Generator().manual_seed(seed)
    eye = torch.eye(16)
    junk = slice(64, 80)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for layer in range(2):
            for which in ("ln1", "ln2"):
                bridge.block_norm(model, layer, which).weight.fill_(1.0)
        bridge.final_norm_module(model).weight.fill_(1.0)
        bridge.embed_module(model).weight[:, 0:16] = eye
        pos = bridge.pos_embed_module(model)
        assert pos is not None
        pos.weight[:, 16:32] = eye
        z = torch.zeros(D_HEAD, D_MODEL)
        q0, k0, v0, o0 = z.clone(), z.clone(), z.clone(), z.clone().T.contiguous()
        q0[:, 16:32] = beta * eye  # query: my position p
        k0[:, 16:32] = beta * torch.diag(torch.ones(15), -1)  # key at p': unit p' + 1
        v0[:, 0:16] = eye  # value: the token there
        o0[32:48] = 0.3 * eye  # -> previous-token dimensions
        _head(model.blocks[0].attn, 0, q0, k0, v0, o0)
        q1, k1, v1, o1 = z.clone(), z.clone(), z.clone(), z.clone().T.contiguous()
        q1[:, 0:16] = beta * eye  # query: my token
        k1[:, 32:48] = beta * eye  # key: the token before that position
        v1[:, 0:16] = eye
        o1[48:64] = 0.3 * eye  # -> output dimensions
        _head(model.blocks[1].attn, 0, q1, k1, v1, o1)
        for layer in range(2):
            attn = model.blocks[layer].attn
            for h in range(1, 4):  # distractors: read anything, write junk only

                def rnd(*s: int) -> Tensor:
                    return torch.randn(*s, generator=gen) * 0.3

                o = torch.zeros(D_MODEL, D_HEAD)
                o[junk] = 0.05 * rnd(16, D_HEAD)
                _head(attn, h, rnd(D_HEAD, D_MODEL), rnd(D_HEAD, D_MODEL),
                      rnd(D_HEAD, D_MODEL), o)  # fmt: skip
            (w_in,) = bridge.mlp_input_projections(model, layer)
            w_in.weight.copy_(torch.randn(w_in.weight.shape, generator=gen) * 0.3)
            bridge.mlp_output_projection(model, layer).weight[junk] = (
                torch.randn(16, 32, generator=gen) * 0.02
            )
        bridge.unembed_module(model).weight[:, 48:64] = 10.0 * eye
    return model


def induction_pairs(
    n: int, *, length: int = 7, seed: int = 0
) -> tuple[list[list[int]], list[list[int]], list[int], list[int]]:
    """``n`` pairs: clean ``A + A[:-1]`` (answer ``A[-1]``), corrupt ``B + A[:-1]`` with ``B``
    disjoint from ``A`` (wrong ``B[-1]``); ``A``, ``B`` of ``length`` distinct tokens."""
    if not 2 <= length <= VOCAB // 2:
        raise ValueError(f"length must be in 2..{VOCAB // 2}, got {length}")
    gen = torch.Generator().manual_seed(seed)
    clean, corrupt, answer, wrong = [], [], [], []
    for _ in range(n):
        perm = torch.randperm(VOCAB, generator=gen).tolist()
        a, b = perm[:length], perm[length : 2 * length]
        clean.append(a + a[:-1])
        corrupt.append(b + a[:-1])
        answer.append(a[-1])
        wrong.append(b[-1])
    return clean, corrupt, answer, wrong


def edge_auroc(graph: Graph, truth: Sequence[tuple[str, str]]) -> float:
    """AUROC of ``|score|`` separating the ``truth`` edges from every other existing edge
    (ties count one half)."""
    lay = graph.layout
    is_true: Bool[Tensor, "w r"] = torch.zeros_like(graph.mask)
    for w, r in truth:
        is_true[lay.writer_index(w), lay.reader_index(r)] = True
    mask = graph.mask
    score = graph.scores.abs()[mask].double()
    label = is_true[mask]
    pos, neg = score[label], score[~label]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("truth must hold some, but not all, of the graph's edges")
    greater = (pos[:, None] > neg[None, :]).double().sum()
    ties = (pos[:, None] == neg[None, :]).double().sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))
