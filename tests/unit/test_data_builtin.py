"""Built-in datasets: sizes, parallel completeness, spot checks against hand-verified facts;
the organism adapter; `lens data check`."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from lens import data
from lens.cli import main as cli_main

FACT_LANGS = {"en", "fr", "de", "es"}


def test_every_builtin_name_loads_and_validates():
    names = data.builtin_names()
    assert {"facts", "translations", "requests", "texts", "organism-facts"} <= set(names)
    for name in ("facts", "translations", "requests", "texts"):
        ds = data.load_builtin(name)
        assert ds.kind == name and len(ds) > 0
    with pytest.raises(ValueError, match="known:"):
        data.load_builtin("recipes")


def test_facts_are_parallel_across_four_languages_and_four_relations():
    ds = data.load_builtin("facts")
    by_id: dict[str, set[str]] = {}
    for r in ds:
        by_id.setdefault(r.id, set()).add(r.language)
    assert all(langs == FACT_LANGS for langs in by_id.values())
    subjects = {i.split("/")[0] for i in by_id}
    assert len(subjects) >= 50
    assert set(ds.counts()["relation"]) == {"capital", "language", "currency", "continent"}
    assert len(by_id) == 4 * len(subjects)


@pytest.mark.parametrize(
    "fid,lang,prompt,obj",
    [
        ("france/capital", "en", "The capital of France is", "Paris"),
        ("france/capital", "fr", "La capitale de la France est", "Paris"),
        ("germany/capital", "de", "Die Hauptstadt von Deutschland ist", "Berlin"),
        ("spain/language", "es", "En España se habla", "español"),
        ("croatia/currency", "en", "The currency of Croatia is the", "euro"),
        ("japan/currency", "fr", "Au Japon, on paie en", "yens"),
        (
            "united_kingdom/capital",
            "de",
            "Die Hauptstadt des Vereinigten Königreichs ist",
            "London",
        ),
        ("brazil/continent", "es", "Brasil está en", "América del Sur"),
    ],
)
def test_spot_checked_facts(fid, lang, prompt, obj):
    (rec,) = [r for r in data.load_builtin("facts") if r.id == fid and r.language == lang]
    assert (rec.prompt, rec.object) == (prompt, obj)


def test_eurozone_members_answer_euro_and_others_do_not():
    euro = {"france", "germany", "italy", "spain", "portugal", "greece", "austria", "croatia"}
    euro |= {"slovakia", "slovenia", "lithuania", "latvia"}
    en = {
        r.id.split("/")[0]: r.object
        for r in data.load_builtin("facts").by_language("en")
        if r.relation == "currency"
    }
    assert {c for c, o in en.items() if o == "euro"} == euro


def test_translations_cover_100_concepts_in_six_languages_one_non_latin():
    ds = data.load_builtin("translations")
    per_concept = Counter(r.concept for r in ds)
    assert len(per_concept) >= 100 and set(per_concept.values()) == {6}
    assert set(ds.languages()) == {"en", "fr", "de", "es", "it", "ru"}
    assert all(any("\u0400" <= ch <= "\u04ff" for ch in r.word) for r in ds.by_language("ru"))


def test_requests_have_20_of_each_label_per_language_in_parallel():
    ds = data.load_builtin("requests")
    for lang in FACT_LANGS:
        labels = Counter(r.label for r in ds.by_language(lang))
        assert labels["harmful"] >= 20 and labels["harmless"] >= 20
    label_of: dict[str, set[str]] = {}
    for r in ds:
        label_of.setdefault(r.id, set()).add(r.label)
    assert all(len(v) == 1 for v in label_of.values())


def test_texts_have_30_samples_per_language_and_python_snippets_compile():
    ds = data.load_builtin("texts")
    counts = ds.counts()["language"]
    assert set(counts) == {"en", "fr", "de", "es", "it", "python", "javascript"}
    assert min(counts.values()) >= 30
    for r in ds.by_language("python"):
        compile(r.text, "<builtin python sample>", "exec")


def test_organism_export_matches_the_world():
    from lens import organism

    w = organism.world()
    facts = data.load_builtin("organism-facts")
    assert len(facts) == len(w.facts) * len(w.scripts)
    rec = next(r for r in facts if r.id == "fact0" and r.language == "ka")
    assert (rec.prompt, rec.object) == w.fact_sentence(0, "ka")[:2]
    reqs = data.load_builtin("organism-requests")
    harmful = {r.id.split("-")[0] for r in reqs if r.label == "harmful"}
    assert harmful == set(w.harmful_actions)
    words = data.load_builtin("organism-translations")
    assert {r.language for r in words} == set(w.scripts)
    texts = data.load_builtin("organism-texts")
    assert set(texts.languages()) == set(w.scripts)


def test_organism_export_round_trips_through_a_file(tmp_path):
    ds = data.load_builtin("organism-requests")
    assert data.load(data.save(tmp_path / "r.jsonl", ds)).records == ds.records


def test_cli_check_prints_counts(capsys):
    assert cli_main(["data", "check", "facts"]) == 0
    out = capsys.readouterr().out
    assert "lens-facts v1, 880 records" in out and "capital 220" in out


def test_cli_check_bad_file_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    header = json.dumps({"format": "lens-requests", "version": 1})
    path.write_text(header + '\n{"id": "a", "language": "en", "label": "meh", "text": "hi"}\n')
    assert cli_main(["data", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path}:2: field 'label'" in err
