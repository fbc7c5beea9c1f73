"""fact_consistency and relation_neurons on the real SmolLM2-135M-Instruct with lens's built-in
real facts, at reduced size (slow tier): each finishes and writes its report; English recall
is recomputed by greedy generation; French/German/Spanish, where this model hardly answers
facts (see ../shared/DESIGN.md), are flagged instead of feeding consistency."""

from __future__ import annotations

import numpy as np
import pytest

import lens
from lens import data
from lens.studies import StudyResult, fact_consistency, relation_neurons

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_facts(tmp_path_factory):
    """The first 12 countries of the built-in facts (4 relations), in en and fr."""
    facts = data.load_builtin("facts")
    countries = list(dict.fromkeys(r.id.split("/")[0] for r in facts))[:12]
    keep = [r for r in facts if r.id.split("/")[0] in countries and r.language in ("en", "fr")]
    return str(data.save(tmp_path_factory.mktemp("facts") / "facts.jsonl", keep))


def test_fact_consistency_smollm2(smol, small_facts, tmp_path):
    config = fact_consistency.Config(data=small_facts, shortcut_layers=[20], batch_size=16)
    res = fact_consistency.run(smol, config)
    d = res.data
    out = res.save(tmp_path / "fc")
    report = (out / "report.md").read_text()
    assert (out / "recall_clc.png").is_file() and (out / "shortcut.png").is_file()
    assert "no training checkpoints" in report
    # English recall by greedy generation, one prompt at a time
    en = data.load(small_facts).by_language("en")
    ids = {fid: i for i, fid in enumerate(dict.fromkeys(r.id for r in data.load(small_facts)))}
    hits = []
    for r in en:
        plain = smol.tokenizer(r.prompt, add_special_tokens=False)["input_ids"]
        full = smol.tokenizer(f"{r.prompt} {r.object}", add_special_tokens=False)["input_ids"]
        got = lens.generate.greedy_tokens(smol, [r.prompt], max_new_tokens=1, stop_at_eos=False)
        hits.append(int(got[0, 0]) == full[len(plain)])
    assert d.final["correct"]["en"] == sorted(ids[r.id] for r, h in zip(en, hits) if h)
    # measured 0.29 here: capitals mostly known, continents never (it answers " the")
    assert d.final["recall"]["en"] > 0.2
    if d.final["recall"]["fr"] < config.min_recall:
        assert d.near_zero == ["fr"] and d.final["clc"]["fr"] is None
        assert "Near-zero baseline recall" in report
    assert StudyResult.load(out).data == d


def test_relation_neurons_smollm2(smol, small_facts, tmp_path):
    config = relation_neurons.Config(
        data=small_facts, k=100, k_multipliers=[1.0], n_random_seeds=1, batch_size=16
    )
    res = relation_neurons.run(smol, config)
    d = res.data
    out = res.save(tmp_path / "rn")
    assert (out / "report.md").is_file() and (out / "drop_matrix.png").is_file()
    assert d.relations == ["capital", "language", "currency", "continent"]
    assert np.nanmean(np.array(d.base_accuracy[0], dtype=float)) > 0.1  # some English known
    assert all(len(d.neurons[r]) == 100 for r in d.relations)
    assert StudyResult.load(out).findings == res.findings
