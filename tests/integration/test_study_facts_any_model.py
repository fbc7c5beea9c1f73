"""fact_consistency and relation_neurons on a model that is not the organism (stories260k, a
real tiny Llama) with a tiny hand-written facts file: the data layer, answer scoring, flagged
near-zero languages and the missing checkpoints, against independent computations (greedy
generation with lens.generate, one unpadded forward at a time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lens
from interventions import NeuronDeactivation
from interventions.neurons import neurons_by_layer
from lens.data import load
from lens.studies import StudyResult, fact_consistency, relation_neurons

TINY_FACTS = str(Path(__file__).resolve().parents[1] / "data" / "tiny_facts.jsonl")


def greedy_hits(model, records, whole: bool, interventions=()) -> list[bool]:
    """Whether the greedy continuation starts with the answer's first token (or all of its
    tokens), one prompt at a time, answer tokens from the tokenizer directly."""
    tok = model.tokenizer
    out = []
    for r in records:
        plain = tok(r.prompt, add_special_tokens=False)["input_ids"]
        full = tok(f"{r.prompt} {r.object}", add_special_tokens=False)["input_ids"]
        answer = full[len(plain) :] if whole else full[len(plain) : len(plain) + 1]
        got = lens.generate.greedy_tokens(
            model,
            [r.prompt],
            max_new_tokens=len(answer),
            interventions=interventions,
            stop_at_eos=False,
        )
        out.append(got[0].tolist() == answer)
    return out


@pytest.fixture(scope="module")
def facts():
    return load(TINY_FACTS)


@pytest.mark.parametrize("scoring", ["first_token", "teacher_forced"])
def test_fact_consistency_on_stories(stories_model, facts, scoring, tmp_path):
    config = fact_consistency.Config(data=TINY_FACTS, shortcut_layers=[1], scoring=scoring)
    res = fact_consistency.run(stories_model, config)
    d = res.data
    assert d.source == TINY_FACTS and d.scoring == scoring and d.pivot == "en"
    assert d.fact_ids[:2] == ["lily/place", "lily/toy"]
    by_id = {fid: i for i, fid in enumerate(dict.fromkeys(r.id for r in facts))}
    for lang in ("en", "fr"):
        records = facts.by_language(lang)
        hits = greedy_hits(stories_model, records, whole=scoring == "teacher_forced")
        expected = sorted(by_id[r.id] for r, h in zip(records, hits) if h)
        assert d.final["correct"][lang] == expected, lang
        assert d.final["recall"][lang] == pytest.approx(len(expected) / len(records))
    assert d.final["recall"]["en"] > 0.5  # the file's English answers are mostly the model's
    assert d.near_zero == ["fr"] and d.final["clc"]["fr"] is None
    assert d.training == {"points": [], "note": fact_consistency.run.__globals__["NO_CHECKPOINTS"]}
    out = res.save(tmp_path / "fc")
    report = (out / "report.md").read_text()
    assert "no training checkpoints" in report and "Near-zero baseline recall" in report
    assert f"Scoring `{scoring}`" in report
    back = StudyResult.load(out)
    assert back.data == d and back.findings == res.findings


def test_relation_neurons_on_stories(stories_model, facts, tmp_path):
    config = relation_neurons.Config(
        data=TINY_FACTS, k=6, k_multipliers=[0.5, 1.0], n_random_seeds=1, batch_size=5
    )
    res = relation_neurons.run(stories_model, config)
    d = res.data
    assert d.language == "en" and d.languages == ["en", "fr"] and d.near_zero == ["fr"]
    assert d.relations == ["place", "toy", "sight"]
    assert set(d.selection_subjects) | set(d.eval_subjects) == {"Lily", "Tom", "Sue", "Ben"}
    assert all(v is None for row in d.drop[1] for v in row)  # fr: not measured
    # one drop entry, recomputed by greedy generation one prompt at a time
    rel = d.relations[1]
    evals = [
        r
        for r in facts.by_language("en")
        if r.relation == rel and r.subject in set(d.eval_subjects)
    ]
    dea = NeuronDeactivation(neurons_by_layer(map(tuple, d.neurons[d.relations[0]])))
    base = np.mean(greedy_hits(stories_model, evals, whole=False))
    after = np.mean(greedy_hits(stories_model, evals, whole=False, interventions=[dea]))
    assert d.base_accuracy[0][1] == pytest.approx(base, abs=1e-12)
    assert d.drop[0][0][1] == pytest.approx(base - after, abs=1e-12)
    assert any("not testable in fr" in f.claim for f in res.findings)
    out = res.save(tmp_path / "rn")
    assert "Near-zero baseline accuracy in fr" in (out / "report.md").read_text()
    assert (out / "drop_matrix.png").is_file() and (out / "transfer.png").is_file()
    assert lens.count_hooks(stories_model) == 0


def test_models_without_a_tokenizer_get_a_clear_error():
    tiny = lens.load_model(lens.tiny_config("llama"))
    with pytest.raises(ValueError, match="no tokenizer"):
        relation_neurons.run(tiny, relation_neurons.Config(data=TINY_FACTS, k=2))
    with pytest.raises(ValueError, match="no tokenizer"):
        fact_consistency.run(tiny, fact_consistency.Config(data=TINY_FACTS, shortcut_layers=[]))
