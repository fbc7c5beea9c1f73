"""The one token rule: how an answer, wrong token, target or refusal token becomes an id
(:func:`token_id`), used by every API that takes one; re-exported by :mod:`lens.tokens`.

An int or ``"id:N"`` is that id (range-checked); ``" word"`` is the word's token at the start of
a word; a bare ``"word"`` too when that is one known token, else it is taken as written; other
text is taken as written. Several tokens are refused (``multi="error"``) or the first is taken
(``multi="first"``); an unknown word is an error or a warning (``unknown=``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from lens.inputs import UnknownTokenWarning

TokenLike = int | str
MultiToken = Literal["error", "first"]
OnUnknown = Literal["error", "warn"]
_CONTEXTS = ("x", "0", "\n")  # neutral text a token is written after (the first that keeps)


class TokenError(ValueError):
    """A token (answer, target) that lens cannot turn into the id(s) it needs; the message
    names the rule and shows the tokens."""


RULE = (
    "lens's token rule: an int or 'id:N' is that id; ' word' gets the word's tokens at the "
    "start of a word; a bare 'word' too when that is one known token, else it is taken as "
    "written; other text is taken as written"
)


def _tokenizer(model: Any, what: str) -> Any:
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise TokenError(f"this model has no tokenizer: give {what} as a token id (or 'id:N')")
    return tok


def _check_id(model: Any, value: int, what: str) -> int:
    vocab = int(model.cfg.d_vocab)
    if not 0 <= value < vocab:
        raise TokenError(f"{what} id {value} is out of range: this model has ids 0..{vocab - 1}")
    return value


def tokens_after(model: Any, context: str, text: str, *, what: str = "text") -> list[int]:
    """Ids of ``text`` written right after ``context``: the tokens of ``context + text`` past
    those of ``context`` (no BOS; ``[]`` when ``text`` adds none). Raises :class:`TokenError`
    when a token spans the boundary or the context's own tokens change.

    Example:
        >>> import lens
        >>> model = lens.load_model("organism")
        >>> tokens_after(model, "the job of alice is", " lawyer") == [token_id(model, "lawyer")]
        True
    """
    tok = _tokenizer(model, what)
    head = [int(i) for i in tok.encode(context, add_special_tokens=False)]
    enc = tok([context + text], add_special_tokens=False, return_offsets_mapping=True)
    ids, spans, cut = list(enc["input_ids"][0]), enc["offset_mapping"][0], len(context)
    before = [int(i) for i, (a, _) in zip(ids, spans) if a < cut]
    merged = any(a < cut < b for a, b in spans)
    if merged or before != head:
        raise TokenError(f"{what} {text!r} merges into the token before it after {context!r}")
    return [int(i) for i in ids[len(before) :]]  # [] when text adds no token


def _text_ids(model: Any, text: str, what: str) -> list[int]:
    if not text:
        raise TokenError(f"{what} is an empty string; {RULE}")
    tok = _tokenizer(model, what)
    word = text[1:] if text.startswith(" ") else text
    if word[:1].isalnum():  # a word: its tokens at the start of a word (after a space)
        start = _written(model, " " + word, what)
        bare = not text.startswith(" ")
        if not bare or (len(start) == 1 and start[0] != getattr(tok, "unk_token_id", None)):
            return start
    return _written(model, text, what)  # as written: other text, or a bare word's fallback


def _written(model: Any, text: str, what: str) -> list[int]:
    """``text``'s tokens after neutral text (the first context that does not merge with it)."""
    tok = _tokenizer(model, what)
    for context in _CONTEXTS:
        try:
            ids = tokens_after(model, context, text, what=what)
        except TokenError:
            continue
        if ids:
            return ids
    if not tok.encode(text, add_special_tokens=False):
        raise TokenError(f"{what} {text!r} tokenizes to nothing; give a token id ('id:N')")
    raise TokenError(f"{what} {text!r} cannot be tokenized apart from its context; pass 'id:N'")


def token_sequence(
    model: Any, token: Any, *, what: str = "token", unknown: OnUnknown = "error"
) -> list[int]:
    """Every id of ``token`` under the one token rule (see :data:`RULE`); a checked id for an
    int or ``"id:N"``. A token that becomes the tokenizer's unknown token raises
    :class:`TokenError` (``unknown="error"``) or warns :class:`UnknownTokenWarning`.

    Example:
        >>> import lens
        >>> model = lens.load_model("organism")
        >>> ids = token_sequence(model, "alice lawyer")
        >>> ids == [token_id(model, "alice"), token_id(model, "lawyer")]
        True
    """
    if isinstance(token, bool) or not isinstance(token, (int, str, np.integer)):
        raise TokenError(f"{what} must be a token id or a string, got {token!r}")
    if isinstance(token, str) and token.startswith("id:"):
        if not token[3:].lstrip("-").isdigit():
            raise TokenError(f"{what} {token!r}: write ids as 'id:N' with N an integer")
        token = int(token[3:])
    if not isinstance(token, str):
        return [_check_id(model, int(token), what)]
    ids = _text_ids(model, token, what)
    tok = _tokenizer(model, what)
    unk = getattr(tok, "unk_token_id", None)
    if unk is not None and unk in ids:
        msg = (
            f"{what} {token!r} has a word the tokenizer does not know: it becomes the "
            f"unknown token {tok.unk_token!r} (id {unk})"
        )
        if unknown == "error":
            raise TokenError(msg + "; a score of that token would mean nothing")
        warnings.warn(msg + ", so that is what is tracked", UnknownTokenWarning, stacklevel=3)
    return [_check_id(model, i, what) for i in ids]


def token_id(
    model: Any,
    token: Any,
    *,
    multi: MultiToken = "error",
    unknown: OnUnknown = "error",
    what: str = "token",
) -> int:
    """The one id of ``token`` (int, ``"id:N"`` or text) under lens's token rule.

    Text of one space then a letter or digit (``" Paris"``) gets the tokens the word has at
    the start of a word, after a space (GPT-2's ``"ĠParis"``, SentencePiece's ``"▁Paris"``).
    A bare word (``"Paris"``) gets the same when that is one token the tokenizer knows, else
    its tokens as written. Any other text (``"."``, ``"\\n"``, ``"  x"``) is taken as written,
    glued to what precedes it. Other forms (a word's glued form when its word-start form is
    one token, a piece inside a word) are reached by id.

    Args:
        model: a TransformerBridge (its tokenizer and ``cfg.d_vocab``).
        token: an id (checked against ``d_vocab``; negative refused), ``"id:N"`` or text.
        multi: text of several tokens raises (``"error"``, naming the tokens) or gives its
            first token (``"first"``).
        unknown: text that becomes the unknown token raises (``"error"``) or warns.
        what: the argument's name in messages (``"answer"``, ``"target"``).

    Example:
        >>> import lens
        >>> model = lens.load_model("organism")
        >>> token_id(model, "alice") == token_id(model, " alice") == token_id(model, "id:76")
        True
    """
    ids = token_sequence(model, token, what=what, unknown=unknown)
    if len(ids) > 1 and multi == "error":
        tok = _tokenizer(model, what)
        convert = getattr(tok, "convert_ids_to_tokens", None)
        pieces = convert(ids) if convert else [tok.decode([i]) for i in ids]
        raise TokenError(
            f"{what} {token!r} is {len(ids)} tokens {pieces} (ids {ids}) under {RULE}; "
            "one token is needed here: pass one of them as 'id:N', or a single-token word"
        )
    return ids[0]


def token_ids(
    model: Any,
    tokens: Any,
    *,
    n: int,
    multi: MultiToken = "error",
    unknown: OnUnknown = "error",
    what: str = "token",
) -> Int[Tensor, " n"]:
    """One id per row (``n`` rows): a single token is used for every row, a list gives one per
    row; each through :func:`token_id`.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> token_ids(model, 7, n=2).tolist(), token_ids(model, ["id:3", 4], n=2).tolist()
        ([7, 7], [3, 4])
    """
    if isinstance(tokens, Tensor):
        tokens = tokens.tolist()
    if not isinstance(tokens, (str, int, np.integer, Sequence, np.ndarray)):
        raise TokenError(
            f"{what} must be a token (an int id, 'id:N' or text) or a list of them, "
            f"one per prompt; got {type(tokens).__name__} {tokens!r}"
        )
    items = [tokens] * n if isinstance(tokens, (str, int, np.integer)) else list(tokens)
    if len(items) != n:
        raise TokenError(f"{what} has {len(items)} entries for {n} prompts (or give one)")
    ids = [token_id(model, t, multi=multi, unknown=unknown, what=what) for t in items]
    return torch.tensor(ids, dtype=torch.long)
