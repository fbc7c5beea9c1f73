"""Argument checking of :func:`lens.logit_lens`: layers, positions, targets, categories.

Everything here runs before any hook is installed, so bad input raises with nothing changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from interventions.sites import check_site, resolve_layers
from lens.readout.kernel import NORMS
from lens.tokens import Batch, token_id

# The sites of interventions.sites that hold a d_model vector the unembedding can decode.
LensSite = Literal["resid_post", "resid_pre", "resid_mid", "attn_out", "mlp_out"]
SITES: tuple[LensSite, ...] = ("resid_post", "resid_pre", "resid_mid", "attn_out", "mlp_out")


def check_args(
    model: Any,
    layers: Any,
    site: LensSite,
    norm: str,
    top_k: int,
    batch_size: int,
    chunk_size: int,
    include_embed: bool = False,
) -> list[int]:
    """The layer list to decode, after checking every scalar argument of the logit lens."""
    check_site(site, SITES, "logit lens site")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    vocab = int(model.cfg.d_vocab)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be an int in 1..{vocab} (the vocabulary), got {top_k!r}")
    if batch_size < 1 or chunk_size < 1:
        raise ValueError("batch_size and chunk_size must be >= 1")
    layer_list = resolve_layers(model, layers)
    if not isinstance(include_embed, bool):
        raise TypeError(f"include_embed must be True or False, got {include_embed!r}")
    if include_embed and site == "resid_pre" and 0 in layer_list:
        raise ValueError(
            "include_embed=True adds the residual stream before block 0, which "
            "site='resid_pre' already reads as layer 0: drop one of them"
        )
    return layer_list


def position_index(positions: Any, b: Batch) -> tuple[Tensor, Tensor]:
    """Per row, the padded-row index of every decoded position, and whether it is real."""
    mask = b.attention_mask.cpu().bool()
    n_rows, seq = mask.shape
    if isinstance(positions, str) and positions == "last":
        index = b.last_positions.cpu()[:, None]
    elif isinstance(positions, str):  # all
        index = torch.arange(seq).expand(n_rows, seq)
    elif isinstance(positions, Tensor):
        if positions.dtype == torch.bool or positions.ndim != 1 or len(positions) != n_rows:
            raise ValueError(
                "a positions tensor must be 1-D with one integer index per prompt "
                f"({n_rows}); for shared indices pass a list of ints"
            )
        index = positions.cpu().long()[:, None]
    else:
        given = [positions] if isinstance(positions, int) else list(positions)
        bad = [p for p in given if not -seq <= p < seq]
        if bad:
            raise IndexError(f"positions {bad} out of range for sequence length {seq}")
        shared = sorted({p % seq for p in given})  # increasing order, duplicates dropped
        index = torch.tensor(shared).expand(n_rows, -1)
    outside = index[(index < 0) | (index >= seq)]
    if outside.numel():
        raise IndexError(f"positions {outside.unique().tolist()} out of range for length {seq}")
    index = index.contiguous()
    return index, mask.gather(1, index)


def target_token_ids(model: Any, targets: Any, n_rows: int) -> Tensor | None:
    """One target token id per prompt (or None), each through :func:`lens.tokens.token_id`:
    text of several tokens is refused with its tokens shown; text the tokenizer does not know
    warns (:class:`~lens.tokens.UnknownTokenWarning`: a target is only displayed). A list or
    tuple target stands for its first element."""
    if targets is None:
        return None
    if isinstance(targets, (str, int, np.integer)):
        targets = [targets] * n_rows
    if isinstance(targets, Tensor):
        targets = targets.tolist()
    if not isinstance(targets, (Sequence, np.ndarray)):
        raise TypeError(
            "targets must be None, a token (int id, 'id:N' or text) or a list of them, "
            f"one per prompt; got {targets!r}"
        )
    targets = list(targets)
    if len(targets) != n_rows:
        raise ValueError(f"got {len(targets)} targets for {n_rows} prompts (or pass one)")
    ids = [token_id(model, _first(t), unknown="warn", what="target") for t in targets]
    return torch.tensor(ids, dtype=torch.long)


def _first(target: Any) -> Any:
    if isinstance(target, (list, tuple)):
        if not target:
            raise ValueError("an empty target")
        return _first(target[0])
    return target


def category_matrix(
    model: Any, categories: Mapping[str, Any] | None, device: Any
) -> tuple[list[str], Tensor | None]:
    """Category names and a ``[d_vocab, category]`` 0/1 membership matrix (float32)."""
    if not categories:
        return [], None
    vocab = int(model.cfg.d_vocab)
    names = list(categories)
    matrix = torch.zeros(vocab, len(names))
    for j, name in enumerate(names):
        ids = sorted({int(i) for i in categories[name]})
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise ValueError(f"category {name!r}: ids {bad[:5]} out of range for vocab {vocab}")
        matrix[ids, j] = 1.0
    return names, matrix.to(device)
