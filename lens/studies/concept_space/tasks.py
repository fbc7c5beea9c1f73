"""The translation and repetition tasks of Wendler et al. (2024, "Do Llamas work in
English?", arXiv 2402.10588) built from a word-translation dataset, for any model.

Translation (``fr -> de``): a few-shot prompt whose last line leaves the target word open::

    Français: "montagne" - Deutsch: "Berg"
    ...
    Français: "fleur" - Deutsch: "

Repetition (``de``): the same with the target language on both sides
(``Deutsch: "Blume" - Deutsch: "``). The answer is read by its first token as the tokenizer
splits the word right after the opening quote (:func:`first_token_after`); the English word of
the same concept, at the same place, is the pivot answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from lens.tokens import TokenError, token_id, tokens_after

# How a language names itself in the prompt; other codes are written as they are.
LANGUAGE_NAMES = {
    "en": "English",
    "fr": "Français",
    "de": "Deutsch",
    "es": "Español",
    "it": "Italiano",
    "pt": "Português",
    "nl": "Nederlands",
    "ru": "Русский",
    "zh": "中文",
    "ja": "日本語",
    "python": "Python",
    "javascript": "JavaScript",
}


@dataclass
class TaskPanel:
    """The prompts of one panel and what is read at their last position.

    Attributes:
        name: ``"fr->de"`` (translation) or ``"de->de"`` (repetition).
        kind: ``"translation"`` or ``"repetition"``.
        src, tgt: source and target language.
        concepts: the concept of each prompt.
        prompts: the few-shot prompts.
        words: ``{curve: [first token id per prompt]}`` for ``target answer``, ``pivot answer``,
            ``source word`` (translation only) and ``code answer`` (when the data has code).
        answers, pivot_words: the target and pivot words (text) of each prompt.
        excluded: concepts left out because their target and pivot words share a first token.
    """

    name: str
    kind: str
    src: str
    tgt: str
    concepts: list[str]
    prompts: list[str]
    words: dict[str, list[int]]
    answers: list[str]
    pivot_words: list[str]
    excluded: list[str]


def line(src: str, src_word: str, tgt: str, tgt_word: str | None = None) -> str:
    """One prompt line; without ``tgt_word`` it stops after the opening quote.

    Example:
        >>> line("fr", "fleur", "de")
        'Français: "fleur" - Deutsch: "'
    """
    head = f'{LANGUAGE_NAMES.get(src, src)}: "{src_word}" - {LANGUAGE_NAMES.get(tgt, tgt)}: "'
    return head if tgt_word is None else f'{head}{tgt_word}"'


def first_token_after(model: Any, context: str, word: str) -> int:
    """Id of the first token of ``word`` written right after ``context`` (no space between),
    by :func:`lens.tokens.tokens_after`.

    Tokenizers that mark word starts (SentencePiece's ``▁``) split a word differently alone
    and after a quote; this reads the token the model would emit at that place. When the
    word merges into the context's last token, the word's own first token by lens's token
    rule (:func:`lens.tokens.token_id`) is used.

    Example:
        >>> import lens
        >>> model = lens.load_model("organism")
        >>> first_token_after(model, 'x: "', "alice") == lens.tokens.token_id(model, "alice")
        True
    """
    try:
        return tokens_after(model, context, word, what="answer")[0]
    except TokenError:
        return token_id(model, word, multi="first", what="answer")


def build_panel(
    model: Any,
    words: dict[str, dict[str, str]],
    src: str,
    tgt: str,
    pivot: str,
    code: list[str],
    n_shots: int,
    max_items: int | None,
    seed: int,
) -> TaskPanel:
    """Few-shot prompts for every concept that has a word in ``src``, ``tgt`` and ``pivot``.

    ``words`` is ``{language: {concept: word}}``. Concepts whose target and pivot words share
    a first token are excluded (and listed): there the two curves would be one. The shots are
    other concepts of the same pair, drawn with ``seed``; ``max_items`` samples the concepts.
    """
    kind = "repetition" if src == tgt else "translation"
    usable = sorted(c for c in words[tgt] if c in words[src] and c in words[pivot])
    rng = random.Random(f"{seed}:{src}:{tgt}")
    context = line(src, "", tgt)  # what comes right before the answer: '... - Deutsch: "'

    def token(word: str) -> int:
        return first_token_after(model, context, word)

    tgt_ids = {c: token(words[tgt][c]) for c in usable}
    pivot_ids = {c: token(words[pivot][c]) for c in usable}
    excluded = [c for c in usable if tgt_ids[c] == pivot_ids[c]]
    kept = [c for c in usable if c not in excluded]
    items = kept if max_items is None or max_items >= len(kept) else rng.sample(kept, max_items)
    items = sorted(items)
    curves: dict[str, list[int]] = {"target answer": [], "pivot answer": []}
    if kind == "translation":
        curves["source word"] = []
    # the first code language that has a word for every item (none: no code curve)
    code_lang = next(
        (x for x in code if x not in (src, tgt) and set(items) <= set(words.get(x, {}))), None
    )
    if code_lang is not None:
        curves["code answer"] = []
    prompts = []
    for c in items:
        pool = [x for x in usable if x != c]
        shots = rng.sample(pool, min(n_shots, len(pool)))
        lines = [line(src, words[src][s], tgt, words[tgt][s]) for s in shots]
        prompts.append("\n".join([*lines, line(src, words[src][c], tgt)]))
        curves["target answer"].append(tgt_ids[c])
        curves["pivot answer"].append(pivot_ids[c])
        if kind == "translation":
            curves["source word"].append(token(words[src][c]))
        if code_lang is not None:
            curves["code answer"].append(token(words[code_lang][c]))
    return TaskPanel(
        name=f"{src}->{tgt}",
        kind=kind,
        src=src,
        tgt=tgt,
        concepts=items,
        prompts=prompts,
        words=curves,
        answers=[words[tgt][c] for c in items],
        pivot_words=[words[pivot][c] for c in items],
        excluded=excluded,
    )


def words_by_language(records: list[Any]) -> dict[str, dict[str, str]]:
    """``{language: {concept: word}}`` from translation records.

    Example:
        >>> from lens.data import TranslationRecord
        >>> words_by_language([TranslationRecord("dog", "fr", "chien")])
        {'fr': {'dog': 'chien'}}
    """
    out: dict[str, dict[str, str]] = {}
    for r in records:
        out.setdefault(r.language, {})[r.concept] = r.word
    return out
