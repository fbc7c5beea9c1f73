"""Token sets from word lists, for the logit lens's category masses.

A token belongs to a word list when its decoded text, stripped of surrounding whitespace,
is one of the words (``mode="exact"``) or a non-empty prefix of one of them
(``mode="prefix"``: the first token of a word split into several tokens, as in the
"do multilingual models think in English" analyses). Every id of the vocabulary is decoded
on its own with the tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MODES = ("exact", "prefix")


def token_sets(
    model_or_tokenizer: Any,
    words: Mapping[str, Iterable[str]],
    *,
    mode: str = "exact",
    ignore_case: bool = False,
    min_chars: int = 1,
) -> dict[str, set[int]]:
    """Build ``{name: set of token ids}`` from ``{name: words}``.

    Args:
        model_or_tokenizer: a model with a ``tokenizer`` (its ``cfg.d_vocab`` bounds the ids)
            or a tokenizer.
        words: e.g. ``{"english": ["the", "house"], "python": ["def", "lambda"]}``.
        mode: ``"exact"``: stripped token text equals a word; ``"prefix"``: stripped token
            text is a prefix of a word.
        ignore_case: compare lower-cased text.
        min_chars: ignore tokens whose stripped text is shorter than this (useful in
            ``"prefix"`` mode, where one-letter tokens are prefixes of many words).

    Returns:
        One set of token ids per name (sets may overlap and may be empty).

    Example:
        >>> from transformers import AutoTokenizer
        >>> import lens
        >>> tok = AutoTokenizer.from_pretrained("/work/shared/assets/stories260k")
        >>> sets = lens.token_sets(tok, {"article": ["the", "The"], "name": ["Lily"]})
        >>> sorted(tok.decode([i]).strip() for i in sets["article"])
        ['The', 'the']
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if min_chars < 1:
        raise ValueError("min_chars must be >= 1")
    tok, vocab = _tokenizer_and_vocab(model_or_tokenizer)
    fold = str.lower if ignore_case else str
    keys: dict[str, set[str]] = {}
    for name, items in words.items():
        if isinstance(items, str):
            raise ValueError(f"words[{name!r}] must be a list of words, not one string")
        clean = {fold(w.strip()) for w in items if w.strip()}
        if mode == "prefix":
            clean = {w[:n] for w in clean for n in range(min_chars, len(w) + 1)}
        keys[name] = clean
    out: dict[str, set[int]] = {name: set() for name in keys}
    for token_id, text in enumerate(vocabulary_strings(tok, vocab)):
        text = fold(text.strip())
        if len(text) < min_chars:
            continue
        for name, allowed in keys.items():
            if text in allowed:
                out[name].add(token_id)
    return out


def vocabulary_strings(tokenizer: Any, vocab: int | None = None) -> list[str]:
    """Decoded text of every token id ``0..vocab-1`` (each decoded on its own)."""
    n = len(tokenizer) if vocab is None else vocab
    return [tokenizer.decode([i]) for i in range(n)]


def _tokenizer_and_vocab(source: Any) -> tuple[Any, int]:
    if hasattr(source, "cfg"):
        tok = getattr(source, "tokenizer", None)
        if tok is None:
            raise ValueError("this model has no tokenizer: pass one, or build the sets by hand")
        return tok, min(len(tok), int(source.cfg.d_vocab))
    if not hasattr(source, "decode"):
        raise TypeError(f"expected a model or a tokenizer, got {type(source).__name__}")
    return source, len(source)
