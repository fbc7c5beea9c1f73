"""The one input gate: what every entry point checks before any forward runs.

* Prompts: at least one; none empty or only whitespace; each within the model's context
  (``cfg.n_ctx``, else the tokenizer's ``model_max_length``), counted in tokens with the BOS.
  A very long text is refused from a bounded prefix, so a 100,000-character prompt never
  reaches the full tokenizer or the model. :func:`lens.tokens.batch` calls these checks,
  so every API that takes text or token-id prompts goes through them.
* Patching pairs: a metric that cannot be normalised (clean metric == corrupted metric, or
  not finite) is refused with the pair named (:func:`check_metric_gap`), never NaN cells.
* Memory: a sweep's activation memory is estimated before it runs (:func:`forward_bytes`,
  :func:`rows_per_forward`) and kept under :data:`MEMORY_BOUND_BYTES` by running fewer
  copies per forward; a sweep whose smallest forward would exceed it is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

MEMORY_BOUND_BYTES = 8 * 1024**3  # activation memory one patching sweep may plan for
CHARS_PER_TOKEN = 16  # a prefix of 16 chars per allowed token decides the fast check


class InputError(ValueError):
    """An input lens refuses before running anything; the message says why and what to do."""


class UnknownTokenWarning(UserWarning):
    """Text mapped to the tokenizer's unknown token: the model sees ``<unk>``, not the words."""


def unknown_words(
    tokenizer: Any, text: str, ids: Sequence[int], offsets: Sequence[tuple[int, int]] | None
) -> list[str]:
    """The pieces of ``text`` that became the unknown token (``ids``/``offsets`` per token)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return []
    spans = offsets if offsets is not None else [(0, 0)] * len(ids)
    return [text[a:b] or "?" for i, (a, b) in zip(ids, spans) if int(i) == unk]


def unknown_message(what: str, index: int, text: str, bad: list[str]) -> str:
    """The warning for a prompt whose words became the unknown token."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    return (
        f"{what} {index} ({shown!r}) has words the tokenizer does not know: "
        f"{', '.join(map(repr, bad))} became the unknown token; the model sees that token "
        "instead (for the organism see `lens organism examples`)"
    )


def context_limit(model: Any) -> tuple[int, str] | None:
    """The most tokens a prompt may have (BOS included) and where the limit comes from.

    Example:
        >>> import lens
        >>> context_limit(lens.load_model("organism"))
        (64, 'its context, cfg.n_ctx')
    """
    n_ctx = getattr(getattr(model, "cfg", None), "n_ctx", None)
    if isinstance(n_ctx, int) and n_ctx > 0:
        return n_ctx, "its context, cfg.n_ctx"
    limit = getattr(getattr(model, "tokenizer", None), "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 10**8:
        return limit, "its tokenizer's model_max_length"
    return None


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def check_texts(model: Any, texts: Sequence[str], *, what: str = "prompt") -> None:
    """Refuse empty or whitespace-only texts, and (from a bounded prefix, before the full
    tokenizer runs) texts far beyond the model's context."""
    if not texts:
        raise InputError(f"no {what}s given: pass at least one")
    for i, text in enumerate(texts):
        if not text.strip():
            raise InputError(f"{what} {i} ({text!r}) is empty: give it some text")
    found = context_limit(model)
    tok = getattr(model, "tokenizer", None)
    if found is None or tok is None:
        return
    limit, source = found
    cap = CHARS_PER_TOKEN * (limit + 2)
    for i, text in enumerate(texts):
        if len(text) > cap:
            count = len(tok.encode(text[:cap], add_special_tokens=False))
            if count > limit + 1:  # the cut can split one token; the rest only adds tokens
                raise InputError(
                    f"{what} {i} ({_shown(text)}, {len(text):,} characters) has more than "
                    f"{count - 1} tokens; this model reads at most {limit} ({source}): shorten it"
                )


def check_lengths(model: Any, lengths: Sequence[int], *, what: str = "prompt") -> None:
    """Refuse rows of no tokens, or of more tokens (BOS included) than the model's context."""
    empty = [i for i, n in enumerate(lengths) if n == 0]
    if empty:
        raise InputError(f"{what}s {empty} have no tokens")
    found = context_limit(model)
    if found is None:
        return
    limit, source = found
    long = [(i, n) for i, n in enumerate(lengths) if n > limit]
    if long:
        i, n = long[0]
        raise InputError(
            f"{what} {i} is {n} tokens (BOS included); this model reads at most {limit} "
            f"({source}): shorten it ({len(long)} {what}(s) too long)"
        )


def check_ids(model: Any, ids: Tensor, *, what: str = "prompt") -> None:
    """Refuse token ids outside ``0..d_vocab-1`` (they would index past the embedding).

    Example:
        >>> import lens, torch
        >>> check_ids(lens.load_model(lens.tiny_config("llama")), torch.tensor([[1, 300]]))
        Traceback (most recent call last):
        ...
        lens.inputs.InputError: prompt 0 holds token id 300; this model's ids are 0..256 (d_vocab 257)
    """  # noqa: E501
    vocab = int(model.cfg.d_vocab)
    bad = ((ids < 0) | (ids >= vocab)).nonzero()
    if len(bad):
        row, col = (int(x) for x in bad[0])
        raise InputError(
            f"{what} {row} holds token id {int(ids[row, col])}; this model's ids are "
            f"0..{vocab - 1} (d_vocab {vocab})"
        )


def check_metric_gap(clean: Tensor, corrupt: Tensor, *, metric: str = "metric") -> None:
    """Refuse pairs whose clean and corrupted metric cannot normalise a patching effect
    (equal, or not finite): ``(patched - corrupt) / (clean - corrupt)`` would be NaN or inf."""
    clean, corrupt = clean.double().cpu(), corrupt.double().cpu()
    for i, (a, b) in enumerate(zip(clean.tolist(), corrupt.tolist())):
        if not (torch.isfinite(torch.tensor([a, b])).all()):
            raise InputError(f"pair {i}: the {metric} is not finite (clean {a}, corrupt {b})")
        if abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b)):
            raise InputError(
                f"pair {i}: the {metric} is the same on the clean and the corrupted prompt "
                f"({a:.6g}); patching effects are normalised by their difference, so choose "
                "prompts (or answer/wrong tokens) the model tells apart"
            )
    if abs(float(clean.mean() - corrupt.mean())) <= 1e-6 * max(1.0, float(clean.abs().max())):
        raise InputError(
            f"the mean {metric} is the same on the clean and the corrupted prompts; "
            "patching effects are normalised by its difference: choose other pairs"
        )


def forward_bytes(model: Any, seq: int, rows: int = 1) -> int:
    """Estimated activation memory of one forward of ``rows`` rows of ``seq`` tokens: a few
    residual-width and MLP-width tensors per position, the attention scores (``heads x seq x
    seq``) and one row of logits per row (an upper estimate, not a measurement).

    Example:
        >>> import lens
        >>> model = lens.load_model("organism")
        >>> forward_bytes(model, 64, rows=2) == 2 * forward_bytes(model, 64)
        True
    """
    cfg = model.cfg
    d_model, n_heads = int(cfg.d_model), int(cfg.n_heads)
    d_mlp = int(getattr(cfg, "d_mlp", None) or 4 * d_model)
    per_row = seq * (8 * d_model + 3 * d_mlp + 2 * n_heads * seq) + int(cfg.d_vocab)
    return 4 * rows * per_row


def rows_per_forward(
    model: Any, seq: int, *, rows: int, n_pairs: int, stored: int = 0, what: str = "sweep"
) -> int:
    """The rows per forward (a multiple of ``n_pairs``, at most ``rows``) that keep ``stored``
    bytes plus one forward under :data:`MEMORY_BOUND_BYTES`; refuses when one copy of the
    pairs does not fit."""
    one = forward_bytes(model, seq, n_pairs)
    room = MEMORY_BOUND_BYTES - stored
    if one > room:
        raise InputError(
            f"this {what} needs about {(stored + one) / 1024**3:.1f} GiB of activations "
            f"({n_pairs} pairs of {seq} tokens), over lens's bound of "
            f"{MEMORY_BOUND_BYTES / 1024**3:.1f} GiB (lens.inputs.MEMORY_BOUND_BYTES): "
            "use fewer or shorter prompts, fewer sites or layers"
        )
    copies = max(1, min(rows // n_pairs, room // one))
    return copies * n_pairs
