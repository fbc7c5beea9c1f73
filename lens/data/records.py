"""Typed records of lens's dataset files, one dataclass per kind of data.

Every field is a non-empty string. Each kind has a format name and version (written in the
header line of its JSONL file, see :mod:`lens.data.jsonl`) and a key: the fields that must be
unique within one file (parallel records share an ``id`` or ``concept`` across languages, never
within one language).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal

from lens.data.pairs import PairRecord, check_pair

Kind = Literal["facts", "translations", "requests", "texts", "pairs"]
Label = Literal["harmful", "harmless"]
LABELS: tuple[str, ...] = ("harmful", "harmless")


@dataclass(frozen=True)
class FactRecord:
    """A fact in one language, asked as a prompt whose answer (``object``) comes next.

    Parallel facts in several languages share ``id`` (and ``relation``); ``subject`` and
    ``object`` are written in the record's language.

    Example:
        >>> FactRecord("france/capital", "en", "France", "capital", "Paris",
        ...            "The capital of France is").object
        'Paris'
    """

    id: str
    language: str
    subject: str
    relation: str
    object: str
    prompt: str


@dataclass(frozen=True)
class TranslationRecord:
    """The word for a concept in one language (``concept`` is shared across languages).

    Example:
        >>> TranslationRecord("dog", "fr", "chien").word
        'chien'
    """

    concept: str
    language: str
    word: str


@dataclass(frozen=True)
class RequestRecord:
    """A request to a chat model, labelled harmful or harmless. Parallel requests share ``id``.

    Example:
        >>> RequestRecord("bake-bread", "en", "harmless", "How do I bake bread?").label
        'harmless'
    """

    id: str
    language: str
    label: Label
    text: str


@dataclass(frozen=True)
class TextRecord:
    """A short text sample in a natural language (``"en"``) or a programming language
    (``"python"``).

    Example:
        >>> TextRecord("python", "print(sum(range(10)))").language
        'python'
    """

    language: str
    text: str


Record = FactRecord | TranslationRecord | RequestRecord | TextRecord | PairRecord


@dataclass(frozen=True)
class FormatSpec:
    """One dataset format: its kind, header name and version, record class and unique key."""

    kind: Kind
    name: str
    version: int
    record: type
    key: tuple[str, ...]
    check: Callable[[dict[str, Any]], tuple[str, str] | None] | None = None  # (field, error)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.record))


FORMATS: dict[str, FormatSpec] = {
    spec.kind: spec
    for spec in (
        FormatSpec("facts", "lens-facts", 1, FactRecord, ("id", "language")),
        FormatSpec(
            "translations", "lens-translations", 1, TranslationRecord, ("concept", "language")
        ),
        FormatSpec("requests", "lens-requests", 1, RequestRecord, ("id", "language")),
        FormatSpec("texts", "lens-texts", 1, TextRecord, ()),
        FormatSpec("pairs", "lens-pairs", 1, PairRecord, ("clean", "corrupt"), check_pair),
    )
}
BY_NAME: dict[str, FormatSpec] = {spec.name: spec for spec in FORMATS.values()}


def spec_of(record: Record) -> FormatSpec:
    """The format of a record instance."""
    for spec in FORMATS.values():
        if isinstance(record, spec.record):
            return spec
    raise TypeError(f"not a lens dataset record: {type(record).__name__}")
