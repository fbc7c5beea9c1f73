"""lens.studies.answers and lens.studies.datasets on real tokenizers (stories260k, organism):
answer tokens, skipped answers, both scorings against independent computations (greedy
generation, one unpadded forward per prompt)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lens
from interventions import NeuronDeactivation
from lens.studies.answers import score_answers, skipped_summary, tokenize_answers
from lens.studies.datasets import is_organism, load_source, study_dataset
from lens.studies.fact_consistency import Config

TINY_FACTS = Path(__file__).resolve().parents[1] / "data" / "tiny_facts.jsonl"


@pytest.fixture(scope="module")
def facts():
    return load_source(TINY_FACTS, "facts").records


def test_answer_tokens_follow_the_prompt(stories_model, facts):
    tok = stories_model.tokenizer
    items = tokenize_answers(stories_model, [r.prompt for r in facts], [r.object for r in facts])
    assert items.kept == list(range(len(facts))) and not items.skipped
    for i, p, a in zip(items.kept, items.prompt_ids, items.answer_ids):
        full = tok(f"{facts[i].prompt} {facts[i].object}", add_special_tokens=False)["input_ids"]
        assert p[0] == tok.bos_token_id and p[1:] + a == full
        assert tok.decode(a).strip() == facts[i].object


def test_unusable_answers_are_skipped_and_reported(stories_model):
    items = tokenize_answers(
        stories_model, ["Lily had a", "Tom had a", "Sue had a"], ["dog", " ", "cat"]
    )
    assert items.kept == [0, 2]
    assert [(s.index, s.reason) for s in items.skipped] == [(1, "empty answer")]
    assert skipped_summary(items.skipped, 3).startswith("1 of 3 prompts skipped")
    # a word the organism's word-level tokenizer does not know
    organism = lens.load_model("organism")
    items = tokenize_answers(organism, ["the job of alice is"] * 2, ["lawyer", "astronaut"])
    assert items.kept == [0] and "does not know" in items.skipped[0].reason


@torch.no_grad()
def test_scorings_match_greedy_generation_and_manual_forward(stories_model, facts):
    model = stories_model
    items = tokenize_answers(model, [r.prompt for r in facts], [r.object for r in facts])
    first = score_answers(model, items, batch_size=5)
    forced = score_answers(model, items, scoring="teacher_forced", batch_size=5)
    n_new = max(len(a) for a in items.answer_ids)
    greedy = lens.generate.greedy_tokens(
        model, items.prompt_ids, max_new_tokens=n_new, stop_at_eos=False
    )
    for r, (p, a) in enumerate(zip(items.prompt_ids, items.answer_ids)):
        logits = model(torch.tensor([p + a]))[0].float().log_softmax(-1)
        at = torch.arange(len(p) - 1, len(p) - 1 + len(a))
        assert int(first.predicted[r]) == int(greedy[r, 0]) == int(logits[len(p) - 1].argmax())
        assert bool(first.hit[r]) == (int(greedy[r, 0]) == a[0])
        assert bool(forced.hit[r]) == (greedy[r, : len(a)].tolist() == a)
        assert float(forced.logprob[r]) == pytest.approx(float(logits[at, a].sum()), abs=1e-4)
        assert float(first.logprob[r]) == pytest.approx(float(logits[len(p) - 1, a[0]]), abs=1e-4)
    # an intervention changes the scores (the scoring sees it)
    zeroed = NeuronDeactivation({layer: list(range(64)) for layer in range(model.cfg.n_layers)})
    after = score_answers(
        model, items, interventions=[zeroed], scoring="teacher_forced", batch_size=5
    )
    assert not torch.allclose(after.logprob, forced.logprob, atol=1e-3)
    assert lens.count_hooks(model) == 0


def test_default_data_per_model(stories_model):
    organism = lens.load_model("organism")
    assert is_organism(organism) and not is_organism(stories_model)
    ds, source, world = study_dataset(organism, Config())
    assert source == "organism-facts" and world is not None and ds.kind == "facts"
    ds, source, world = study_dataset(stories_model, Config())
    assert source == "facts" and world is None and "fr" in ds.languages()
    ds, source, world = study_dataset(stories_model, Config(data=str(TINY_FACTS)))
    assert source == str(TINY_FACTS) and len(ds) == 24
    with pytest.raises(ValueError, match="needs facts"):
        study_dataset(stories_model, Config(data="translations"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        study_dataset(stories_model, Config(data="missing.jsonl"))
