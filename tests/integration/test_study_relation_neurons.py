"""relation_neurons on the shipped organism (quick config): end to end, save/load round trip,
and drop-matrix entries recomputed independently (one unpadded prompt at a time, gold id from
the tokenizer's vocabulary, lens.apply + NeuronDeactivation).

``LENS_TEST_ORGANISM=/path/to/trained/organism`` runs it on another trained organism folder.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lens
from interventions import NeuronDeactivation
from lens import organism
from lens.data.organism_export import organism_facts
from lens.studies import StudyResult, relation_neurons
from lens.studies.base import jsonable
from lens.studies.facts import fact_queries
from tests.integration.conftest import FOLDER, require_organism

require_organism()


@pytest.fixture(scope="module")
def world():
    return organism.world(FOLDER)


@pytest.fixture(scope="module")
def result(model):
    return relation_neurons.run(model, relation_neurons.quick_config())


@torch.no_grad()
def manual_accuracy(model, queries, interventions=()):
    """Share of queries whose last-position argmax is the answer's token (one word = one
    token in the organism), one unpadded prompt at a time."""
    vocab = model.tokenizer.get_vocab()
    hits = 0
    with lens.apply(model, interventions=interventions):
        for q in queries:
            ids = model.tokenizer(q.prompt, add_special_tokens=True)["input_ids"]
            logits = model(torch.tensor([ids]))
            hits += int(logits[0, -1].argmax()) == vocab[q.answer]
    return hits / len(queries)


def eval_queries(world, data, lang, relation):
    subjects = set(data["eval_subjects"])
    return [
        q
        for q in organism.fact_queries(world, lang, heldout=False)
        if q.subject in subjects and q.relation == relation
    ]


def test_round_trip_and_files(result, tmp_path):
    out = result.save(tmp_path / "rn")
    for name in (
        "results.json",
        "report.md",
        "drop_matrix.png",
        "cumulativity.png",
        "overlap.png",
        "transfer.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    loaded = StudyResult.load(out)
    assert isinstance(loaded, relation_neurons.Result)
    assert jsonable(loaded.data) == json.loads(json.dumps(jsonable(result.data)))
    assert type(loaded.data) is type(result.data)
    assert loaded.data == result.data
    assert loaded.findings == result.findings
    assert loaded.headline() == result.headline()


def test_split_and_sizes(result, world):
    d = result.data
    assert set(d["selection_subjects"]).isdisjoint(d["eval_subjects"])
    assert set(d["selection_subjects"]) | set(d["eval_subjects"]) == set(world.persons)
    assert d["languages"] == ["en", "ka", "py"]
    assert d["k"] == round(3000 * world_neurons(result) / (32 * 11008))
    assert all(len(d["neurons"][r]) == d["k"] for r in d["relations"])
    assert all(len({tuple(p) for p in d["neurons"][r]}) == d["k"] for r in d["relations"])


def world_neurons(result):
    return result.data["n_neurons_total"]


@pytest.mark.parametrize("lang_index", [0, 2])
def test_drop_entries_recomputed(model, world, result, lang_index):
    d = result.data
    lang = d["languages"][lang_index]
    rels = d["relations"]
    i = 0
    neurons = {}
    for layer, j in d["neurons"][rels[i]]:
        neurons.setdefault(layer, []).append(j)
    dea = NeuronDeactivation(neurons)
    for j in (i, 1):
        qs = eval_queries(world, d, lang, rels[j])
        base = manual_accuracy(model, qs)
        after = manual_accuracy(model, qs, [dea])
        assert base == pytest.approx(d["base_accuracy"][lang_index][j], abs=1e-12)
        assert base - after == pytest.approx(d["drop"][lang_index][i][j], abs=1e-12)


def test_answer_tokens_are_answer_words(model, world):
    """The study's answer tokens (lens.studies.answers) are the organism's answer words."""
    qs = [q for q in fact_queries(organism_facts(world), world) if q.language == "lisp"][:20]
    got = relation_neurons.make_queries(model, qs, ["lisp"], list(world.relations))
    assert not got.skipped and len(got) == len(qs)
    assert got.answers.first_ids.tolist() == model.tokenizer.convert_tokens_to_ids(
        [q.answer for q in qs]
    )


def test_findings_follow_the_numbers(result):
    d = result.data
    m = np.array(d["drop"][0])
    off = m[~np.eye(len(m), dtype=bool)]
    first = result.findings[0]
    assert "diagonal" in first.claim
    assert first.reproduced == bool(np.diag(m).mean() > off.mean())
    jac = np.array(d["jaccard"])
    sets = [{tuple(p) for p in d["neurons"][r]} for r in d["relations"]]
    assert jac[0, 1] == pytest.approx(len(sets[0] & sets[1]) / len(sets[0] | sets[1]))


def test_other_models_get_the_builtin_real_facts(stories_model):
    """Not the organism: the default data is lens's built-in real facts (checked before any
    neuron is selected); an unknown selection language is a clear error."""
    with pytest.raises(
        ValueError,
        match=r"unknown languages \['ka', 'py'\]; the data has \['en', 'fr', 'de', 'es'\]",
    ):
        relation_neurons.run(stories_model, relation_neurons.quick_config())
