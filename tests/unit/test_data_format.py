"""lens.data file formats: every malformed line names file, line and field; round trips."""

from __future__ import annotations

import json

import pytest

from lens import data
from lens.data import (
    DataFormatError,
    FactRecord,
    RequestRecord,
    TextRecord,
    TranslationRecord,
)

HEADERS = {
    kind: {"format": spec.name, "version": spec.version} for kind, spec in data.FORMATS.items()
}
GOOD = {
    "facts": {
        "id": "f1",
        "language": "en",
        "subject": "France",
        "relation": "capital",
        "object": "Paris",
        "prompt": "The capital of France is",
    },
    "translations": {"concept": "dog", "language": "fr", "word": "chien"},
    "requests": {"id": "r1", "language": "de", "label": "harmless", "text": "Wie backe ich Brot?"},
    "texts": {"language": "python", "text": "x = 1"},
}


def write(tmp_path, lines: list) -> str:
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return str(path)


def error_of(path: str) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        data.load(path)
    return info.value


@pytest.mark.parametrize("kind", list(GOOD))
def test_good_file_loads_into_typed_records(tmp_path, kind):
    ds = data.load(write(tmp_path, [HEADERS[kind], GOOD[kind]]))
    assert ds.kind == kind and len(ds) == 1
    assert isinstance(ds.records[0], data.FORMATS[kind].record)
    assert ds.records[0].language == GOOD[kind]["language"]


def bad_cases():
    facts = GOOD["facts"]
    yield "bad JSON", ["facts", '{"id": "f1",'], 2, None, "bad JSON"
    yield "not an object", ["facts", "[1, 2]"], 2, None, "JSON object"
    yield (
        "missing field",
        ["facts", {k: v for k, v in facts.items() if k != "prompt"}],
        2,
        "prompt",
        "missing",
    )
    yield "wrong type", ["facts", dict(facts, object=3)], 2, "object", "expected a string"
    yield "empty text", ["texts", {"language": "en", "text": "   "}], 2, "text", "empty"
    yield (
        "unknown field",
        ["texts", {"language": "en", "text": "a", "lang": "x"}],
        2,
        "lang",
        "unknown field",
    )
    yield (
        "unknown label",
        ["requests", dict(GOOD["requests"], label="rude")],
        2,
        "label",
        "unknown label",
    )
    yield (
        "duplicate parallel id",
        ["facts", facts, dict(facts, object="Lyon")],
        3,
        "id",
        "duplicate",
    )
    yield (
        "parallel relation mismatch",
        ["facts", facts, dict(facts, language="fr", relation="currency")],
        3,
        "relation",
        "parallel fact",
    )
    dup_word = ["translations", GOOD["translations"], dict(GOOD["translations"], word="clebs")]
    yield "duplicate concept in a language", dup_word, 3, "concept", "duplicate"


@pytest.mark.parametrize("name,lines,line,field,words", list(bad_cases()), ids=lambda x: x)
def test_malformed_record_lines_name_file_line_and_field(tmp_path, name, lines, line, field, words):
    path = write(tmp_path, [HEADERS[lines[0]], *lines[1:]])
    err = error_of(path)
    assert (err.path, err.line, err.field) == (path, line, field)
    assert str(err).startswith(f"{path}:{line}") and words in str(err)


@pytest.mark.parametrize(
    "header,field,words",
    [
        ({"format": "lens-recipes", "version": 1}, "format", "unknown format"),
        ({"format": "lens-facts", "version": 9}, "version", "unsupported version 9"),
        ({"format": "lens-facts", "version": "1"}, "version", "unsupported version"),
        ({"format": "lens-facts", "version": 1, "owner": "me"}, "owner", "unknown header field"),
        (GOOD["facts"], "format", "header"),
    ],
)
def test_bad_header_is_reported_on_line_1(tmp_path, header, field, words):
    err = error_of(write(tmp_path, [header, GOOD["facts"]]))
    assert (err.line, err.field) == (1, field) and words in str(err)


def test_empty_file_and_blank_lines(tmp_path):
    assert error_of(write(tmp_path, [""])).line == 1
    ds = data.load(write(tmp_path, [HEADERS["texts"], "", GOOD["texts"], "  "]))
    assert len(ds) == 1


def test_a_bad_line_after_blank_lines_keeps_its_true_line_number(tmp_path):
    err = error_of(write(tmp_path, [HEADERS["texts"], "", "", {"language": "en"}]))
    assert (err.line, err.field) == (4, "text")


RECORDS = {
    "facts": [
        FactRecord("fr/cap", "en", "France", "capital", "Paris", "The capital of France is"),
        FactRecord("fr/cap", "fr", "France", "capital", "Paris", "La capitale de la France est"),
    ],
    "translations": [TranslationRecord("eye", "fr", "œil"), TranslationRecord("eye", "ru", "глаз")],
    "requests": [RequestRecord("r", "es", "harmless", "¿Cómo hago pan?")],
    "texts": [TextRecord("javascript", 'const s = "a\\nb";\nconsole.log(s);')],
}


@pytest.mark.parametrize("kind", list(RECORDS))
def test_round_trip_write_read(tmp_path, kind):
    path = data.save(tmp_path / f"{kind}.jsonl", RECORDS[kind])
    back = data.load(path)
    assert back.kind == kind and back.records == RECORDS[kind]
    assert json.loads(path.read_text().splitlines()[0]) == HEADERS[kind]
    assert data.save(tmp_path / "again.jsonl", back).read_text() == path.read_text()


def test_save_refuses_mixed_or_invalid_records(tmp_path):
    with pytest.raises(TypeError, match="TextRecord"):
        data.save(tmp_path / "x.jsonl", [RECORDS["facts"][0], RECORDS["texts"][0]])
    with pytest.raises(DataFormatError, match="duplicate"):
        data.save(tmp_path / "y.jsonl", RECORDS["facts"][:1] * 2)
    assert not (tmp_path / "y.jsonl").exists()


def test_counts_per_language_and_relation():
    ds = data.Dataset("facts", RECORDS["facts"])
    counts = ds.counts()
    assert counts["language"] == {"en": 1, "fr": 1}
    assert counts["relation"] == {"capital": 2}
    assert counts["id"] == {"distinct": 1}
