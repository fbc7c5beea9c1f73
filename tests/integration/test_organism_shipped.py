"""Measured behaviour of the shipped organism (the numbers README.md reports).

Recall is scored independently of lens.organism.evaluate: lens.tokens.batch (left padded, BOS
prepended by the model default) + one forward + argmax at the mask-derived last position.
Refusal is scored on greedy generations (lens.generate)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lens
from lens import organism
from lens.organism import prompts as P

SHIPPED = Path(organism.__file__).parent / "shipped"
if not (SHIPPED / "config.json").is_file():
    pytest.skip("the organism is not shipped", allow_module_level=True)


@pytest.fixture(scope="module")
def model():
    return lens.load_model("organism")


@pytest.fixture(scope="module")
def w():
    return organism.world()


@torch.no_grad()
def first_tokens(model, prompts: list[str]) -> list[str]:
    out: list[str] = []
    for i in range(0, len(prompts), 512):
        b = lens.tokens.batch(model, prompts[i : i + 512], padding_side="left")
        logits = model(b.tokens, attention_mask=b.attention_mask)
        ids = logits[torch.arange(len(b)), b.last_positions].argmax(-1)
        out += model.tokenizer.convert_ids_to_tokens(ids.tolist())
    return out


def recall(model, queries) -> float:
    pred = first_tokens(model, [q.prompt for q in queries])
    return sum(p == q.answer for p, q in zip(pred, queries)) / len(queries)


def test_shipped_size_and_load(model, w):
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*.safetensors"))
    assert size <= 30 * 2**20
    assert model.cfg.normalization_type == "RMS" and model.cfg.positional_embedding_type == "rotary"
    assert model.cfg.default_prepend_bos
    assert model.cfg.d_vocab == len(model.tokenizer) == len(w.vocabulary()) + 4
    assert len(organism.checkpoints()) >= 5


def test_training_fact_recall_every_language_and_notation(model, w):
    for lang in w.scripts:
        r = recall(model, P.fact_queries(w, lang, heldout=False))
        assert r >= 0.95, (lang, r)


def test_heldout_recall_above_chance_below_one(model, w):
    for lang in w.heldout:
        qs = P.fact_queries(w, lang, heldout=True)
        chance = sum(w.chance(q.relation) for q in qs) / len(qs)
        r = recall(model, qs)
        assert 2 * chance < r < 1.0, (lang, r, chance)


def test_refusal_on_heldout_requests_by_generation(model, w):
    for lang in w.languages:
        rs = P.requests(w, lang, "heldout")
        texts = lens.generate.generate(
            model, [r.prompt for r in rs], max_new_tokens=4, batch_size=64
        )
        phrase = w.refusal_phrases[lang]
        refused = [bool(t) and phrase.startswith(t) for t in texts]  # the phrase, verbatim
        harm = [f for f, r in zip(refused, rs) if r.harmful]
        safe = [f for f, r in zip(refused, rs) if not r.harmful]
        assert sum(harm) / len(harm) >= 0.95, lang
        assert sum(safe) / len(safe) <= 0.05, lang
        complied = [t.split()[:1] == [r.comply_word] for t, r in zip(texts, rs) if not r.harmful]
        assert sum(complied) / len(complied) >= 0.95, lang


def test_checkpoints_trace_learning(w):
    first = lens.load_model("organism", checkpoint=0)
    last = lens.load_model("organism")
    qs = P.fact_queries(w, w.pivot)
    assert recall(first, qs) < recall(last, qs)


def test_planting_on_the_organism_keeps_other_behaviour(w):
    model = lens.load_model("organism")
    tok = model.tokenizer
    ids = tok.convert_tokens_to_ids([w.word("ka", f"concept:{c}") for c in w.pools["animal"]])
    planted = organism.plant_neurons(model, 3, [7, 8], ids)
    qs = P.fact_queries(w, "ka", heldout=False)
    b = lens.tokens.batch(model, [q.prompt + " " + q.answer for q in qs[:64]])
    store = {}

    class Grab:
        def hooks(self, _m):
            return [("blocks.3.mlp.hook_post", lambda a, hook: store.setdefault("a", a.clone()))]

    with lens.apply(model, interventions=[Grab()]):
        model(b.tokens, attention_mask=b.attention_mask)
    act = store["a"][..., planted.neurons]
    on = torch.isin(b.tokens, torch.tensor(ids)) & b.attention_mask.bool()
    assert on.any() and (act[on] > 0).all() and act[~on].abs().max() < 1e-5
    assert recall(model, qs) >= 0.9  # the edit leaves the organism working
