"""Positive controls: each study run on the planted organism recovers the planted truth, and
the negative variant gives "does not reproduce" where nothing was planted."""

from __future__ import annotations

import pytest

import lens
from lens.studies import language_neurons, refusal
from lens.studies.demo import control_config
from lens.studies.recovery import planted_truth

pytestmark = pytest.mark.slow


def test_lape_recovers_planted_language_neurons(planted):
    res = language_neurons.run(planted, language_neurons.quick_config())
    rec = res.data.recovery
    assert rec["precision"] >= 0.9 and rec["recall"] >= 0.9, rec
    assert res.headline().startswith("recovered planted language neurons")
    assert all(f.reproduced for f in res.findings)


def test_lape_on_the_natural_organism_has_no_truth():
    res = language_neurons.run(lens.load_model("organism"), language_neurons.quick_config())
    assert res.data.recovery is None and not res.headline().startswith(("recovered", "missed"))


def _transfer(res) -> bool:
    return next(f for f in res.findings if "every other language" in f.claim).reproduced


def test_refusal_recovers_the_shared_direction(planted):
    res = refusal.run(planted, refusal.quick_config())
    rec = res.data.recovery
    assert rec["min_cosine"] >= 0.9 and rec["recovered"], rec
    assert _transfer(res)
    assert res.headline().startswith("recovered planted shared refusal direction")


def test_refusal_finds_no_transfer_where_none_was_planted(null):
    res = refusal.run(null, refusal.quick_config())
    rec = res.data.recovery
    assert rec["min_cosine"] >= 0.9 and rec["recovered"], rec
    assert not _transfer(res)  # "does not reproduce": the study is not biased toward yes
    assert not next(f for f in res.findings if "similar" in f.claim).reproduced


def test_causal_tracing_peaks_at_the_planted_fact_pathway(planted, null):
    from lens.studies import causal_tracing

    truth = planted_truth(planted, "fact_pathway")
    # the demo's control config: with quick_config's 2 noise draws the planted effect can vanish
    # (in about half the draws the noised subject trips the planted refusal head, whose huge
    # output then swamps every position; see lens.organism.planted_facts)
    config = control_config("causal_tracing", quick=False)
    res = causal_tracing.run(planted, config)
    rec = res.data.recovery
    assert rec["recovered"] and rec["found"] == {"en": truth["layer"]}, rec
    assert res.headline().startswith("recovered planted fact pathway")
    assert res.findings[0].reproduced  # en's early site
    # the negative control: the same prompts without the pathway peak elsewhere
    res = causal_tracing.run(null, config)
    rec = res.data.recovery
    assert rec["recovered"] and not rec["planted"] and rec["found"]["en"] != truth["layer"], rec
    assert not res.findings[0].reproduced  # "does not reproduce"


def test_concept_space_finds_the_planted_pivot_band(planted, null):
    from lens.studies import concept_space

    truth = planted_truth(planted, "latent_pivot")
    res = concept_space.run(planted, concept_space.quick_config())
    rec = res.data.recovery
    assert rec["recovered"] and set(rec["found"]) == {"translate to language", "translate to code"}
    assert all(band == truth["layers"] for band in rec["found"].values()), rec
    assert res.headline().startswith("recovered planted latent pivot")
    assert res.findings[0].reproduced  # translation into a language
    # the negative control: no pivot planted, none found
    res = concept_space.run(null, concept_space.quick_config())
    rec = res.data.recovery
    assert rec["recovered"] and not rec["planted"] and not any(rec["found"].values()), rec
    assert not any(f.reproduced for f in res.findings[:2])  # "does not reproduce"


def test_relation_neurons_recovers_the_planted_neurons(planted):
    from lens.studies import relation_neurons

    res = relation_neurons.run(planted, control_config("relation_neurons", quick=False))
    rec = res.data.recovery
    assert rec["precision"] >= 0.9 and rec["recall"] >= 0.9 and rec["recovered"], rec
    assert rec["n_planted"] == 8 * 17
    assert res.headline().startswith("recovered planted relation neurons")
