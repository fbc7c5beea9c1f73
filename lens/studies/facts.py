"""Fact queries for the fact studies (fact_consistency, relation_neurons), from a ``lens.data``
facts dataset: parallel facts numbered, subjects keyed across languages, and (on the organism's
own data) its held-out (fact, language) pairs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lens.data.jsonl import Dataset


@dataclass(frozen=True)
class FactQuery:
    """One fact asked in one language.

    Attributes:
        index: the parallel fact's number (order of first appearance of its ``id``; on the
            organism's data, its index in the organism's world).
        id: the parallel fact's id (shared across languages).
        language: the language (or the organism's notation).
        relation: the fact's relation.
        subject: a key for the subject shared across languages (the subject as written in
            the reference language; on the organism, its person).
        prompt: the query; the answer follows after one space.
        answer: the gold object in this language.
        heldout: the organism never saw this (fact, language) pair in training (always False
            on other data).
    """

    index: int
    id: str
    language: str
    relation: str
    subject: str
    prompt: str
    answer: str
    heldout: bool = False


def pivot_language(languages: list[str], world: Any = None) -> str:
    """The language others are compared with: the organism's pivot, else English when present,
    else the first language.

    Example:
        >>> pivot_language(["fr", "en", "de"]), pivot_language(["fr", "de"])
        ('en', 'fr')
    """
    if world is not None and world.pivot in languages:
        return world.pivot
    return "en" if "en" in languages else languages[0]


def fact_queries(dataset: Dataset, world: Any = None) -> list[FactQuery]:
    """Every record of a facts dataset as a :class:`FactQuery`, in file order.

    Args:
        dataset: a ``lens.data`` facts dataset.
        world: the organism's world when ``dataset`` is its own export (ids ``fact<index>``):
            held-out pairs and persons come from it.

    Example:
        >>> from lens.data import load_builtin
        >>> qs = fact_queries(load_builtin("facts"))
        >>> q = [q for q in qs if q.language == "de"][0]
        >>> q.index, q.subject, q.prompt, q.answer
        (0, 'France', 'Die Hauptstadt von Frankreich ist', 'Paris')
    """
    if dataset.kind != "facts":
        raise ValueError(f"fact queries need a facts dataset, got {dataset.kind}")
    records = list(dataset.records)
    index: dict[str, int] = {}
    for r in records:
        index.setdefault(r.id, len(index))
    languages = list(dict.fromkeys(r.language for r in records))
    reference = pivot_language(languages, world) if languages else ""
    subject_of: dict[str, str] = {}
    for r in records:  # reference-language subject first, else the first one seen
        if r.id not in subject_of or r.language == reference:
            subject_of[r.id] = r.subject
    out = []
    for r in records:
        i, subject, held = index[r.id], subject_of[r.id], False
        if world is not None:
            i = int(r.id.removeprefix("fact"))
            subject = world.facts[i].subject
            held = bool(world.is_heldout(i, r.language))
        out.append(FactQuery(i, r.id, r.language, r.relation, subject, r.prompt, r.object, held))
    return out
