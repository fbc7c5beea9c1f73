"""The organism's built-in data (its synthetic world) in lens's dataset formats.

Facts cover every language and notation (parallel ids ``fact<index>``), translations every
translatable lexicon word (objects, persons, relations, actions, things), requests every
(action, thing) pair (parallel ids ``<action>-<thing>``), texts
the organism's single-language corpora. Held-out (fact, language) pairs are included: the
organism's own studies filter them through :mod:`lens.organism`.
"""

from __future__ import annotations

from typing import Any

from lens.data.jsonl import Dataset
from lens.data.pairs import PairRecord
from lens.data.records import FactRecord, Label, RequestRecord, TextRecord, TranslationRecord


def _world(world: Any) -> Any:
    if world is not None:
        return world
    from lens.organism import world as shipped_world  # noqa: PLC0415  (imports torch)

    return shipped_world()


def organism_facts(world: Any = None) -> Dataset:
    """Every fact of the world as a query in every language and notation.

    Example:
        >>> ds = organism_facts()
        >>> ds.records[0].prompt, ds.records[0].object
        ('the job of alice is', 'lawyer')
    """
    w = _world(world)
    out = []
    for fact in w.facts:
        for lang in w.scripts:
            prompt, answer, _ = w.fact_sentence(fact, lang)
            subject = w.word(lang, f"person:{fact.subject}")
            out.append(
                FactRecord(f"fact{fact.index}", lang, subject, fact.relation, answer, prompt)
            )
    return Dataset("facts", out)


TRANSLATED_KINDS = ("concept", "person", "rel", "action", "thing")


def organism_translations(world: Any = None) -> Dataset:
    """Every translatable lexicon word in every language and notation that has it.

    Objects of the relations keep their bare name as ``concept`` (``"lawyer"``); the other
    kinds of :data:`TRANSLATED_KINDS` are ``"<kind>:<name>"`` (``"person:alice"``).

    Example:
        >>> ds = organism_translations()
        >>> sorted({r.concept for r in ds.records} & {"lawyer", "person:alice"})
        ['lawyer', 'person:alice']
    """
    w = _world(world)
    out = []
    for key in w.lexicon[w.pivot]:
        kind, name = key.split(":", 1)
        if kind not in TRANSLATED_KINDS:
            continue
        concept = name if kind == "concept" else key
        for lang in w.scripts:
            if key in w.lexicon[lang]:
                out.append(TranslationRecord(concept, lang, w.lexicon[lang][key]))
    return Dataset("translations", out)


def translation_kind(concept: str) -> tuple[str, str]:
    """(kind, lexicon key) of an :func:`organism_translations` concept.

    Example:
        >>> translation_kind("lawyer"), translation_kind("person:alice")
        (('concept', 'concept:lawyer'), ('person', 'person:alice'))
    """
    if ":" in concept:
        return concept.split(":", 1)[0], concept
    return "concept", f"concept:{concept}"


def organism_requests(world: Any = None) -> Dataset:
    """Every request of every language, labelled by whether its action is harmful."""
    w = _world(world)
    out = []
    for lang in w.languages:
        for split in ("train", "val", "heldout"):
            for action, thing in w.request_splits[lang][split]:
                label: Label = "harmful" if w.is_harmful(action) else "harmless"
                text = w.request_prompt(lang, action, thing)
                out.append(RequestRecord(f"{action}-{thing}", lang, label, text))
    return Dataset("requests", out)


def organism_texts(world: Any = None) -> Dataset:
    """Single-language texts (trained fact sentences, train requests with their responses)."""
    from lens.organism.prompts import corpus  # noqa: PLC0415

    w = _world(world)
    return Dataset("texts", [TextRecord(lang, t) for lang in w.scripts for t in corpus(w, lang)])


def organism_pairs(world: Any = None) -> Any:
    """The organism's relation facts as pairs: a fact's query (clean) vs the query of another
    person for the same relation and language whose answer differs (corrupt); task = relation.

    Example:
        >>> ds = organism_pairs()
        >>> r = ds.records[0]
        >>> r.task, r.clean, r.answer
        ('occupation', 'the job of alice is', 'lawyer')
    """
    facts = organism_facts(world).records
    groups: dict[tuple[str, str], list[Any]] = {}
    for f in facts:
        groups.setdefault((f.language, f.relation), []).append(f)
    out = []
    for (lang, relation), group in groups.items():
        for i, f in enumerate(group):
            other = next(
                (g for g in group[i + 1 :] + group[:i] if g.object != f.object
                 and g.prompt != f.prompt), None,
            )  # fmt: skip
            if other is not None:
                out.append(
                    PairRecord(relation, lang, f.prompt, other.prompt, f.object, other.object)
                )
    return Dataset("pairs", out)


EXPORTERS = {
    "facts": organism_facts,
    "translations": organism_translations,
    "requests": organism_requests,
    "texts": organism_texts,
    "pairs": organism_pairs,
}
