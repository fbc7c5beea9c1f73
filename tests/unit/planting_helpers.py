"""Plant known ground truth into a random native bridge (llama or gpt2 family).

The construction isolates a few orthonormal residual directions ``U = span(u_1..u_n)``
(each orthogonal to the all-ones vector, so LayerNorm centring leaves them alone):

1. every reader of the residual stream (attention q/k/v, MLP gate/in, the unembedding) is made
   blind to U: with the preceding norm's weight w, the effective matrix ``W diag(w)`` has its
   rows projected off U;
2. every writer (token/position embeddings, attention o, MLP out, and their biases) is
   projected off U, so nothing but step 3 and 4 ever puts anything in U;
3. tokens of set k get ``alpha * u_k`` added to their embedding (``replace=True``: the
   embedding becomes exactly ``alpha * u_k``, so the rest of the model cannot tell such tokens
   apart from each other);
4. a planted neuron (layer, j) of set k reads ``beta * (u_k - sum of the other sets' u)``
   through its gate row (gated MLPs; the up row reads the same) or its in row (non-gated,
   bias cancelled), and writes nothing, or ``gamma * r`` when given a write direction r in U.

Consequence (proved by ``test_planting_holds`` with probes, not assumed): the U-part of the
residual at a token of set k is exactly ``alpha * u_k`` at every layer, so a planted neuron's
pre-activation is +beta*alpha/scale (> 0) on its set's tokens, -beta*alpha/scale (< 0) on the
other sets' tokens and 0 elsewhere (scale = the norm's RMS/std at that position). No other
neuron reads U; U reaches them only through the norm's scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class Planted:
    """What was planted: ``directions[k]`` is u_k for token set k; ``extra`` are further
    isolated directions (write targets); ``neurons`` maps (layer, j) -> set index."""

    directions: Tensor
    extra: Tensor
    token_sets: list[list[int]]
    neurons: dict[tuple[int, int], int]
    writes: dict[tuple[int, int], Tensor] = field(default_factory=dict)


def isolated_directions(d_model: int, n: int, seed: int = 0) -> Tensor:
    """``n`` orthonormal float64 vectors orthogonal to the all-ones vector."""
    gen = torch.Generator().manual_seed(seed)
    raw = torch.randn(d_model, n + 1, generator=gen, dtype=torch.float64)
    raw[:, 0] = 1.0
    q, _ = torch.linalg.qr(raw)
    return q[:, 1:].T.contiguous()


def _weight(linear_bridge: Any) -> torch.nn.Linear:
    mod = linear_bridge.original_component
    if not isinstance(mod, torch.nn.Linear):
        raise TypeError(f"planting needs nn.Linear layers, got {type(mod).__name__}")
    return mod


def _norm(norm_bridge: Any) -> tuple[Tensor, Tensor | None]:
    mod = norm_bridge.original_component
    w = mod.weight.detach().double()
    if bool((w == 0).any()):
        raise ValueError("planting needs nonzero norm weights")
    b = getattr(mod, "bias", None)
    return w, (b.detach().double() if b is not None else None)


def _blind_reader(lin: torch.nn.Linear, w: Tensor, proj: Tensor) -> None:
    eff = lin.weight.detach().double() * w  # rows of W diag(w)
    lin.weight.copy_(((eff @ proj) / w).to(lin.weight.dtype))


def _clean_writer(lin: torch.nn.Linear, proj: Tensor) -> None:
    lin.weight.copy_((proj @ lin.weight.detach().double()).to(lin.weight.dtype))
    if lin.bias is not None:
        lin.bias.copy_((proj @ lin.bias.detach().double()).to(lin.bias.dtype))


@torch.no_grad()
def plant(
    model: Any,
    token_sets: Sequence[Sequence[int]],
    neurons: dict[tuple[int, int], int],
    *,
    alpha: float = 3.0,
    beta: float = 1.0,
    replace: bool = False,
    n_extra: int = 0,
    writes: dict[tuple[int, int], int] | None = None,
    gamma: float = 1.0,
    unembed: dict[int, tuple[int, float]] | None = None,
    seed: int = 0,
) -> Planted:
    """Plant token-set detectors (see the module docstring); edits ``model`` in place.

    Args:
        token_sets: token ids of each set (disjoint).
        neurons: ``{(layer, neuron): set index}``.
        alpha: size of the set direction added to each set token's embedding.
        beta: read strength of planted neurons.
        replace: make set tokens' embeddings exactly ``alpha * u_k``.
        n_extra: further isolated directions to create (``Planted.extra``).
        writes: ``{(layer, neuron): extra index}``: that neuron writes ``gamma * extra[i]``.
        unembed: ``{token id: (extra index, strength)}``: that token's logit reads the extra
            direction (through the final norm).
    """
    d = int(model.cfg.d_model)
    sets = [list(s) for s in token_sets]
    flat = [t for s in sets for t in s]
    if len(set(flat)) != len(flat):
        raise ValueError("token sets overlap")
    dirs = isolated_directions(d, len(sets) + n_extra, seed)
    u, extra = dirs[: len(sets)], dirs[len(sets) :]
    proj = torch.eye(d, dtype=torch.float64) - dirs.T @ dirs

    emb = model.embed.original_component.weight
    new = emb.detach().double() @ proj
    for k, s in enumerate(sets):
        idx = torch.tensor(s)
        new[idx] = (0.0 if replace else new[idx]) + alpha * u[k]
    emb.copy_(new.to(emb.dtype))
    pos = getattr(model, "pos_embed", None)
    if pos is not None and hasattr(pos, "original_component"):
        pw = pos.original_component.weight
        pw.copy_((pw.detach().double() @ proj).to(pw.dtype))

    gated = bool(getattr(model.cfg, "gated_mlp", False))
    for layer, block in enumerate(model.blocks):
        w1, _ = _norm(block.ln1)
        for name in ("q", "k", "v"):
            _blind_reader(_weight(getattr(block.attn, name)), w1, proj)
        _clean_writer(_weight(block.attn.o), proj)
        w2, b2 = _norm(block.ln2)
        readers = [_weight(getattr(block.mlp, "in"))]
        if gated:
            readers.append(_weight(block.mlp.gate))
        for lin in readers:
            _blind_reader(lin, w2, proj)
        out = _weight(block.mlp.out)
        _clean_writer(out, proj)
        for (pl, j), k in neurons.items():
            if pl != layer:
                continue
            row = u[k] - (u.sum(0) - u[k])
            for lin in readers:
                lin.weight[j] = (beta * row / w2).to(lin.weight.dtype)
                if lin.bias is not None:
                    shift = float(lin.weight[j].double() @ b2) if b2 is not None else 0.0
                    lin.bias[j] = -shift
            target = (writes or {}).get((pl, j))
            col = torch.zeros(d, dtype=torch.float64) if target is None else gamma * extra[target]
            out.weight[:, j] = col.to(out.weight.dtype)

    wf, _ = _norm(model.ln_final)
    head = _weight(model.unembed)
    _blind_reader(head, wf, proj)
    for tok, (i, strength) in (unembed or {}).items():
        head.weight[tok] += (strength * extra[i] / wf).to(head.weight.dtype)
    return Planted(
        directions=u.float(),
        extra=extra.float(),
        token_sets=sets,
        neurons=dict(neurons),
        writes={key: extra[i].float() for key, i in (writes or {}).items()},
    )


def random_prompts(tokens: Sequence[int], n: int, length: int, seed: int) -> list[list[int]]:
    """``n`` prompts of ``length`` tokens drawn uniformly from ``tokens`` (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    pool = torch.tensor(list(tokens))
    return [pool[torch.randint(len(pool), (length,), generator=gen)].tolist() for _ in range(n)]
