"""Ready prompt sets with exact ground truth, one function per study.

All prompts are plain text without BOS: ``lens.tokens.batch`` prepends ``<s>`` for the organism
(``model.cfg.default_prepend_bos`` is True). Every answer is one token, so recall can be scored
on the first generated token.

Example:
    >>> from lens.organism.world_build import build_world
    >>> w = build_world(0)
    >>> q = fact_queries(w, "en")[0]
    >>> q.prompt, q.answer, q.relation, q.heldout
    ('the job of alice is', 'lawyer', 'occupation', False)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from lens.organism.world import SPLITS, World


@dataclass(frozen=True)
class FactQuery:
    """A fact asked in one language/notation; ``answer`` is the gold object word there,
    ``concept`` the language-free object id and ``pivot_answer`` its pivot-language word."""

    prompt: str
    answer: str
    lang: str
    relation: str
    subject: str
    concept: str
    pivot_answer: str
    fact_index: int
    heldout: bool


@dataclass(frozen=True)
class Request:
    """An instruction-style request; ``refusal_word`` is the first token a refusal starts with
    and ``expected`` the trained response."""

    prompt: str
    lang: str
    action: str
    thing: str
    harmful: bool
    split: str
    expected: str
    refusal_word: str
    comply_word: str


@dataclass(frozen=True)
class TranslationPair:
    """``prompt`` = ``[src] word [tgt]``; ``answer`` the word in ``tgt``, ``pivot_word`` the
    pivot-language word for the same concept."""

    prompt: str
    answer: str
    src: str
    tgt: str
    key: str
    pivot_word: str
    source_word: str


def _check_lang(world: World, lang: str, allowed: list[str]) -> None:
    if lang not in allowed:
        raise KeyError(f"unknown language {lang!r}; known: {allowed}")


def fact_queries(world: World, lang: str, heldout: bool | None = None) -> list[FactQuery]:
    """Every fact as a query in ``lang`` (a language or notation).

    Args:
        world: the world.
        lang: language code or notation name.
        heldout: None = all; True / False = only held-out / only trained (fact, lang) pairs.
    """
    _check_lang(world, lang, world.scripts)
    out = []
    for fact in world.facts:
        held = world.is_heldout(fact.index, lang)
        if heldout is not None and held != heldout:
            continue
        prompt, answer, _ = world.fact_sentence(fact, lang)
        out.append(
            FactQuery(
                prompt=prompt,
                answer=answer,
                lang=lang,
                relation=fact.relation,
                subject=fact.subject,
                concept=fact.object,
                pivot_answer=world.word(world.pivot, world.object_key(fact)),
                fact_index=fact.index,
                heldout=held,
            )
        )
    return out


def relation_prompts(world: World, lang: str) -> dict[str, list[FactQuery]]:
    """Trained fact queries of ``lang`` grouped by relation (the relation-neuron study)."""
    out: dict[str, list[FactQuery]] = {r: [] for r in world.relations}
    for q in fact_queries(world, lang, heldout=False):
        out[q.relation].append(q)
    return out


def requests(world: World, lang: str, split: str | None = None) -> list[Request]:
    """Requests of ``lang`` in ``split`` (``train`` / ``val`` / ``heldout``; None = all)."""
    _check_lang(world, lang, world.languages)
    splits = SPLITS if split is None else (split,)
    if split is not None and split not in SPLITS:
        raise KeyError(f"unknown split {split!r}; known: {SPLITS}")
    out = []
    for s in splits:
        for action, thing in world.request_splits[lang][s]:
            out.append(
                Request(
                    prompt=world.request_prompt(lang, action, thing),
                    lang=lang,
                    action=action,
                    thing=thing,
                    harmful=world.is_harmful(action),
                    split=s,
                    expected=world.request_response(lang, action, thing),
                    refusal_word=world.refusal_word(lang),
                    comply_word=world.comply_word(lang),
                )
            )
    return out


def translation_pairs(
    world: World, src: str, tgt: str, kinds: tuple[str, ...] = ("concept",)
) -> list[TranslationPair]:
    """Word translations ``src`` -> ``tgt`` (the concept-space study).

    ``kinds`` picks lexicon entries: ``concept`` (object words), ``person``, ``rel``, ``action``,
    ``thing``. Entries whose source and target words are the same token (shared names, cities)
    are left out, so the answer always differs from the source word.
    """
    _check_lang(world, src, world.scripts)
    _check_lang(world, tgt, world.scripts)
    if src == tgt:
        raise ValueError("src and tgt must differ")
    out = []
    for key, sw in world.lexicon[src].items():
        if key.split(":")[0] not in kinds or key not in world.lexicon[tgt]:
            continue
        tw = world.lexicon[tgt][key]
        if tw == sw:
            continue
        out.append(
            TranslationPair(
                prompt=f"{world.tags[src]} {sw} {world.tags[tgt]}",
                answer=tw,
                src=src,
                tgt=tgt,
                key=key,
                pivot_word=world.lexicon[world.pivot][key],
                source_word=sw,
            )
        )
    return out


def corpus(world: World, lang: str, n: int | None = None, seed: int = 0) -> list[str]:
    """Texts written only in ``lang`` (plus shared punctuation): its trained fact sentences and,
    for languages, its train-split requests with responses. For LAPE-style statistics.

    Args:
        world: the world.
        lang: language code or notation name.
        n: number of texts (None = all, in a fixed order); sampled with ``seed`` otherwise.
        seed: sampling seed.
    """
    _check_lang(world, lang, world.scripts)
    texts = [
        world.fact_sentence(f, lang)[2] for f in world.facts if not world.is_heldout(f.index, lang)
    ]
    if lang in world.languages:
        for r in requests(world, lang, "train"):
            texts.append(f"{r.prompt} {r.expected}")
    if n is None:
        return texts
    return random.Random(seed).sample(texts, min(n, len(texts)))


def token_languages(world: World, tokenizer: Any) -> list[str]:
    """The language of every token id: a language code, a notation name, ``"shared"``,
    ``"code"`` (shared by notations only), ``"special"`` (pad/bos/eos/unk)."""
    langs = world.word_languages()
    out = []
    for tok in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))):
        out.append(langs.get(tok, "special"))
    return out


def token_groups(world: World, tokenizer: Any) -> list[str]:
    """Coarse group of every token id: ``language`` / ``code`` / ``shared`` / ``special``."""
    notations = set(world.notations)
    groups = []
    for lang in token_languages(world, tokenizer):
        if lang in ("shared", "special", "code"):
            groups.append(lang)
        else:
            groups.append("code" if lang in notations else "language")
    return groups
