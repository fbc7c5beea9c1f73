"""Prompts -> padded batches, positions derived from the attention mask, and the one token
rule (:func:`token_id`: answers, targets, refusal tokens as ids).

Call the model with the mask so that padded rows give the same result as unpadded ones::

    b = lens.tokens.batch(model, prompts, padding_side="left")
    logits = model(b.tokens, attention_mask=b.attention_mask)
    last = logits[torch.arange(len(b)), b.last_positions]     # never logits[:, -1] blindly

Left padding is safe for rotary and learned positions (tested batched == one-by-one).
BOS: ``prepend_bos=None`` uses the model's default ``model.cfg.default_prepend_bos`` (True in
TransformerLens; ``lens.load_model`` sets it per model: False for SmolLM2-Instruct whose
declared BOS is the chat marker ``<|im_start|>``). The tokenizer's own special tokens are
never added on top, so a BOS is never doubled.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interventions.base import last_real_positions, refuse_right_padding
from lens.inputs import (
    InputError,
    UnknownTokenWarning,
    check_ids,
    check_lengths,
    check_texts,
    unknown_message,
    unknown_words,
)
from lens.token_rule import (
    RULE,
    MultiToken,
    OnUnknown,
    TokenError,
    TokenLike,
    token_id,
    token_ids,
    token_sequence,
    tokens_after,
)

PaddingSide = Literal["left", "right"]
last_positions = last_real_positions  # the one home is interventions.base (lens re-exports)
__all__ = [  # the token rule lives in lens.token_rule; lens.tokens is where users find it
    "RULE",
    "Batch",
    "MultiToken",
    "OnUnknown",
    "TokenError",
    "TokenLike",
    "as_batch",
    "batch",
    "default_prepend_bos",
    "last_positions",
    "pad_id",
    "token_id",
    "token_ids",
    "token_sequence",
    "tokens_after",
]


@dataclass
class Batch:
    """A padded batch. ``tokens`` and ``attention_mask`` are [batch, pos]."""

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    padding_side: PaddingSide
    offsets: list[list[tuple[int, int]]] | None = None  # per row, per real token: char span
    texts: list[str] | None = None
    bos_added: bool = False

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def last_positions(self) -> Int[Tensor, " batch"]:
        """Index of the last real token of every row."""
        return last_positions(self.attention_mask)

    @property
    def first_positions(self) -> Int[Tensor, " batch"]:
        """Index of the first real token of every row."""
        return self.attention_mask.long().argmax(dim=1)

    def positions(self, which: str = "all") -> Bool[Tensor, "batch pos"]:
        """Boolean mask of ``"all"`` real tokens or only the ``"last"`` one per row."""
        if which == "all":
            return self.attention_mask.bool()
        if which == "last":
            mask = torch.zeros_like(self.attention_mask, dtype=torch.bool)
            mask[torch.arange(len(self)), self.last_positions] = True
            return mask
        raise ValueError(f"which must be 'all' or 'last', got {which!r}")

    def span(self, row: int, substring: str, occurrence: int = 0) -> list[int]:
        """Token positions (in the padded row) covering ``substring`` in prompt ``row``.

        A token belongs to the span when its characters overlap the substring's.
        """
        if self.offsets is None or self.texts is None:
            raise ValueError("span() needs a batch built from text prompts")
        text = self.texts[row]
        start = -1
        for _ in range(occurrence + 1):
            start = text.find(substring, start + 1)
            if start < 0:
                raise ValueError(f"{substring!r} (occurrence {occurrence}) not in {text!r}")
        end = start + len(substring)
        first = int(self.first_positions[row]) + (1 if self.bos_added else 0)
        return [
            first + i
            for i, (a, b) in enumerate(self.offsets[row])
            if a < end and b > start and b > a
        ]

    def to(self, device: torch.device | str) -> Batch:
        self.tokens = self.tokens.to(device)
        self.attention_mask = self.attention_mask.to(device)
        return self


def _bos_id(model: Any) -> int | None:
    tok = getattr(model, "tokenizer", None)
    return getattr(tok, "bos_token_id", None) if tok is not None else None


def pad_id(model: Any) -> int | None:
    """The id lens pads with: the tokenizer's pad, else eos, else bos (None: no tokenizer).

    Example:
        >>> import lens
        >>> pad_id(lens.load_model(lens.tiny_config("llama"))) is None  # no tokenizer
        True
    """
    tok = getattr(model, "tokenizer", None)
    for attr in ("pad_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(tok, attr, None) if tok is not None else None
        if value is not None:
            return int(value)
    return None


def _pad_id(model: Any) -> int:
    """The id :func:`batch` pads with (0 for a model without a tokenizer)."""
    value = pad_id(model)
    return 0 if value is None else value


def default_prepend_bos(model: Any) -> bool:
    return bool(getattr(model.cfg, "default_prepend_bos", True)) and _bos_id(model) is not None


def batch(
    model: Any,
    prompts: Sequence[str] | Sequence[Sequence[int]] | str,
    *,
    padding_side: PaddingSide = "left",
    prepend_bos: bool | None = None,
    max_length: int | None = None,
    device: torch.device | str | None = None,
    what: str = "prompts",
) -> Batch:
    """Tokenize and pad ``prompts`` (strings, or lists of token ids taken as they are),
    through the input gate (:mod:`lens.inputs`): no empty prompt, none beyond the context.

    Args:
        model: a TransformerBridge (its tokenizer is used for text prompts).
        prompts: one string, a list of strings, or a list of token-id lists.
        padding_side: ``"left"`` (generation-friendly) or ``"right"``.
        prepend_bos: prepend the tokenizer's BOS to text prompts; None = model default.
        max_length: truncate each prompt to its last ``max_length`` tokens (None = keep all).
        device: where to put the tensors (default: the model's device).
        what: the argument's name in error messages (``"clean"``, ``"corrupt"``, ...).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.models.tiny_config("gpt2"))
        >>> b = lens.tokens.batch(model, [[5, 6, 7], [8]], padding_side="left")
        >>> b.attention_mask.tolist(), b.last_positions.tolist()
        ([[1, 1, 1], [0, 0, 1]], [2, 2])
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if not isinstance(prompts, (str, Sequence, Tensor)):
        raise TypeError(
            f"{what} must be a string, a list of strings or a list of token-id lists, "
            f"got {type(prompts).__name__} {prompts!r}"
        )
    items: list[Any] = [prompts] if isinstance(prompts, str) else list(prompts)
    if not items:
        raise InputError(f"{what} is empty: no prompts given, pass at least one")
    is_text = all(isinstance(p, str) for p in items)
    if is_text:
        check_texts(model, items)  # empty, or far too long: refused before tokenizing
    rows: list[list[int]] = []
    offsets: list[list[tuple[int, int]]] | None = None
    bos_added = False
    if is_text:
        tok = getattr(model, "tokenizer", None)
        if tok is None:
            raise ValueError("this model has no tokenizer: pass token-id lists instead of text")
        enc = tok(list(items), add_special_tokens=False, return_offsets_mapping=True)
        offsets = [list(map(tuple, o)) for o in enc["offset_mapping"]]
        rows = [list(ids) for ids in enc["input_ids"]]
        for i, text in enumerate(items):
            bad = unknown_words(tok, text, rows[i], offsets[i])
            if bad:
                warnings.warn(unknown_message("prompt", i, text, bad), UnknownTokenWarning, 2)
        use_bos = default_prepend_bos(model) if prepend_bos is None else prepend_bos
        if use_bos:
            bos = _bos_id(model)
            if bos is None:
                raise ValueError("prepend_bos=True but the tokenizer has no BOS token")
            rows = [[bos] + r for r in rows]
            bos_added = True
    else:
        for p in items:
            if isinstance(p, Tensor):
                p = p.tolist()
            if not all(isinstance(t, int) for t in p):
                raise ValueError(f"{what} must be all strings or all lists of token ids")
            rows.append(list(p))
    if max_length is not None:
        if offsets is not None and any(len(r) > max_length for r in rows):
            raise ValueError("max_length would truncate text prompts; shorten them instead")
        rows = [r[-max_length:] for r in rows]
    check_lengths(model, [len(r) for r in rows])  # no tokens, or beyond the context
    width = max(len(r) for r in rows)
    pad = _pad_id(model)
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(width - len(r), width) if padding_side == "left" else slice(0, len(r))
        tokens[i, sl] = torch.tensor(r, dtype=torch.long)
        mask[i, sl] = 1
    if not is_text:
        check_ids(model, torch.where(mask.bool(), tokens, 0))
    if device is None:
        device = model.cfg.device if getattr(model.cfg, "device", None) else "cpu"
    texts = list(items) if is_text else None
    return Batch(tokens, mask, padding_side, offsets, texts, bos_added).to(device)


def as_batch(
    model: Any, prompts_or_batch: Any, *, padding_side: PaddingSide = "left", what: str = "prompts"
) -> Batch:
    """Pass a Batch through; tokenize anything else with :func:`batch` (``what`` names the
    argument in error messages)."""
    if isinstance(prompts_or_batch, Batch):
        return prompts_or_batch
    if isinstance(prompts_or_batch, Tensor):
        t = prompts_or_batch if prompts_or_batch.ndim == 2 else prompts_or_batch[None]
        check_lengths(model, [t.shape[1]] * t.shape[0])
        check_ids(model, t)
        refuse_right_padding(
            t,
            pad_id(model),
            "a [batch, pos] tensor was given without its attention mask",
            "Pass a lens.tokens.Batch instead (lens.tokens.batch(model, prompts)).",
        )
        return Batch(t, torch.ones_like(t), padding_side)
    return batch(model, prompts_or_batch, padding_side=padding_side, what=what)
