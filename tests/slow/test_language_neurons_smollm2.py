"""language_neurons on the real SmolLM2-135M-Instruct with lens's built-in texts dataset
(English, French, German, Spanish, Italian, Python, JavaScript; slow tier: a few minutes on 2
CPU cores).

Reduced config: at most 16 texts per language, a quarter of them held out for the loss matrix
(the rest feed the LAPE statistics), the paper's top rate (1 %), one random-baseline seed.
Run with ``-s`` to see the per-language counts, the layer distribution and the timings.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from interventions import NeuronDeactivation
from lens import data
from lens.studies import StudyResult, language_neurons
from tests.conftest import manual_loss

pytestmark = pytest.mark.slow


def reduced_config() -> language_neurons.Config:
    return language_neurons.Config(
        data="texts",
        max_texts=16,
        eval_fraction=0.25,
        top_rate=0.01,
        n_random_seeds=1,
        batch_size=8,
    )


@pytest.fixture(scope="module")
def result(smol):
    start = time.perf_counter()
    res = language_neurons.run(smol, reduced_config())
    d = res.data
    print(
        f"\nlanguage_neurons on SmolLM2: {time.perf_counter() - start:.0f} s "
        f"(selection {d['seconds']['selection']:.0f} s)"
    )
    print("neurons per language:", d.n_neurons, "exclusive:", d.n_exclusive)
    for lang, row in zip(d.languages, d.per_layer):
        print(f"{lang:>10}", row)
    print(res.headline())
    for f in res.findings:
        print("-", "reproduces" if f.reproduced else "does NOT reproduce", "|", f.claim, f.evidence)
    return res


def test_runs_and_round_trips(result, tmp_path):
    d = result.data
    langs = data.load_builtin("texts").languages()
    assert d.corpus == "texts" and d.languages == langs
    assert all(d.n_eval_texts[x] == 4 and d.n_stat_texts[x] == 12 for x in langs)
    assert d.n_selected == round(0.01 * 30 * 1536)
    out = result.save(tmp_path / "smol_ln")
    loaded = StudyResult.load(out)
    assert loaded.data == result.data and loaded.findings == result.findings
    assert (out / "deactivation_matrix.png").is_file()
    assert (out / "layer_distribution.png").is_file()


def test_one_entry_recomputed(smol, result):
    d = result.data
    langs = d.languages
    i = langs.index("fr")
    neurons = {}
    for layer, j in d.neurons["fr"]:
        neurons.setdefault(layer, []).append(j)
    texts = d.eval_texts["fr"]
    base = manual_loss(smol, texts, add_special_tokens=False)
    after = manual_loss(smol, texts, [NeuronDeactivation(neurons)], add_special_tokens=False)
    assert base == pytest.approx(d.base_loss[i], abs=1e-3)
    assert after - base == pytest.approx(d.increase[i][i], abs=1e-3)
    inc = np.array(d.increase, dtype=float)
    assert np.isfinite(inc).all()
