"""Ground truth for studies that run on the organism: its world, and word -> token id lookups
checked against the model's tokenizer (so a study fails with a clear message on a model that
was not trained on the organism's world)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def organism_world(model: Any, folder: str | None = None) -> Any:
    """The organism's world (shipped, or of a trained ``folder``), checked against ``model``.

    Raises:
        ValueError: the model's tokenizer does not hold the world's words (not an organism).

    Example:
        >>> import lens
        >>> model = lens.load_model("organism")              # doctest: +SKIP
        >>> organism_world(model).pivot                      # doctest: +SKIP
        'en'
    """
    from lens import organism

    world = organism.world(folder)
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise ValueError("this study needs the organism (a model with the organism's tokenizer)")
    words = world.vocabulary()
    ids = tok.convert_tokens_to_ids(words)
    if any(i is None or i == tok.unk_token_id for i in ids) or max(ids) >= model.cfg.d_vocab:
        raise ValueError(
            "this study needs the organism: the model's tokenizer does not hold the organism "
            "world's words (load it with lens.load_model('organism'), or pass organism_folder "
            "for an organism you trained)"
        )
    return world


def word_ids(model: Any, words: Sequence[str]) -> list[int]:
    """Token id of every word (each word of the organism's world is one token)."""
    tok = model.tokenizer
    ids = tok.convert_tokens_to_ids(list(words))
    bad = [w for w, i in zip(words, ids) if i is None or i == tok.unk_token_id]
    if bad:
        raise ValueError(f"words without a token of their own: {bad[:5]}")
    return [int(i) for i in ids]


def language_token_ids(world: Any, model: Any) -> dict[str, set[int]]:
    """Token ids per language/notation (``lens.organism.token_languages``), plus ``"code"``:
    every notation's tokens and those shared by notations only."""
    from lens.organism import token_languages

    langs = token_languages(world, model.tokenizer)[: int(model.cfg.d_vocab)]
    out: dict[str, set[int]] = {}
    for i, lang in enumerate(langs):
        out.setdefault(lang, set()).add(i)
    code: set[int] = set(out.get("code", set()))
    for notation in world.notations:
        code |= out.get(notation, set())
    out["code"] = code
    return out


def non_pivot_scripts(world: Any, chosen: Iterable[str] | None) -> list[str]:
    """``chosen`` checked against the world's scripts (None: every non-pivot one)."""
    scripts = [s for s in world.scripts if s != world.pivot]
    if chosen is None:
        return scripts
    chosen = list(chosen)
    bad = [s for s in chosen if s not in world.scripts]
    if bad:
        raise ValueError(f"unknown languages/notations {bad}; known: {world.scripts}")
    return chosen
