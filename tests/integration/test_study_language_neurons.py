"""language_neurons on the shipped organism (quick config): end to end, save/load round trip,
and deactivation-matrix entries recomputed independently (one text at a time, no padding,
lens.apply + NeuronDeactivation + a hand-written cross-entropy).

``LENS_TEST_ORGANISM=/path/to/trained/organism`` runs it on another trained organism folder.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interventions import NeuronDeactivation
from lens import organism
from lens.studies import StudyResult, language_neurons
from lens.studies.base import jsonable
from tests.conftest import manual_loss
from tests.integration.conftest import FOLDER, require_organism

require_organism()


@pytest.fixture(scope="module")
def result(model):
    return language_neurons.run(model, language_neurons.quick_config())


def as_layers(pairs):
    out = {}
    for layer, j in pairs:
        out.setdefault(layer, []).append(j)
    return out


def test_round_trip_and_files(result, tmp_path):
    out = result.save(tmp_path / "ln")
    for name in ("results.json", "report.md", "layer_distribution.png", "deactivation_matrix.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    loaded = StudyResult.load(out)
    assert isinstance(loaded, language_neurons.Result)
    assert jsonable(loaded.data) == json.loads(json.dumps(jsonable(result.data)))
    assert type(loaded.data) is type(result.data)
    assert loaded.data == result.data  # data is strict JSON already
    assert loaded.findings == result.findings
    assert loaded.config == result.config
    assert loaded.headline() == result.headline()
    report = (out / "report.md").read_text()
    assert "## Findings" in report and "layer_distribution.png" in report


def test_languages_are_the_organism_scripts(result):
    w = organism.world(FOLDER)
    assert result.data.corpus == "organism"
    assert result.data.languages == w.scripts


def test_neuron_bookkeeping(result):
    d = result.data
    langs = d.languages
    per_layer = np.array(d.per_layer)
    for k, lang in enumerate(langs):
        pairs = [tuple(p) for p in d.neurons[lang]]
        counted = [sum(1 for layer, _ in pairs if layer == x) for x in d.layers]
        assert counted == per_layer[k].tolist()
        others = {tuple(p) for o in langs if o != lang for p in d.neurons[o]}
        exclusive = {tuple(p) for p in d.exclusive[lang]}
        assert exclusive == set(pairs) - others
    union = {tuple(p) for lang in langs for p in d.neurons[lang]}
    assert len(union) <= d.n_selected


def test_deactivation_entries_recomputed(model, result):
    d = result.data
    langs = d.languages
    i = int(np.argmax([d.n_neurons[x] for x in langs]))  # language with most neurons
    j = (i + 1) % len(langs)
    neurons = as_layers(d.neurons[langs[i]])
    dea = NeuronDeactivation(neurons)
    for col in (i, j):
        texts = d.eval_texts[langs[col]]
        base = manual_loss(model, texts)
        with_dea = manual_loss(model, texts, [dea])
        assert base == pytest.approx(d.base_loss[col], abs=1e-4)
        assert with_dea - base == pytest.approx(d.increase[i][col], abs=1e-4)


def test_findings_follow_the_numbers(result):
    d = result.data
    inc = np.array(d.increase, dtype=float)
    rows = [i for i in range(len(inc)) if not np.isnan(inc[i]).any()]
    diag = np.mean([inc[i, i] for i in rows])
    off = np.mean([inc[i, j] for i in rows for j in range(inc.shape[1]) if j != i])
    first = result.findings[0]
    assert "diagonal" in first.claim
    assert first.reproduced == bool(diag > off)
    assert d.stats["diag_mean"] == pytest.approx(diag)
    assert d.stats["off_mean"] == pytest.approx(off)


def test_random_baseline_keeps_per_layer_counts():
    gen = torch.Generator().manual_seed(3)
    want = {0: [1, 5, 9], 4: [2]}
    got = language_neurons.random_like(want, 384, gen)
    assert {k: len(v) for k, v in got.items()} == {0: 3, 4: 1}
    assert all(len(set(v)) == len(v) and max(v) < 384 for v in got.values())
    again = language_neurons.random_like(want, 384, torch.Generator().manual_seed(3))
    assert again == got


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match="top_rate"):
        language_neurons.Config.from_dict({"top_rat": 0.1})
