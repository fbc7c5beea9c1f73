"""The synthetic world: determinism, JSON round trip, ground-truth consistency, held-out
hygiene of the training documents, tokenizer round trip and per-token languages."""

from __future__ import annotations

import pytest

from lens.organism import prompts as P
from lens.organism.documents import DocumentSampler
from lens.organism.tokenizer import build_tokenizer
from lens.organism.world import World
from lens.organism.world_build import build_world


@pytest.fixture(scope="module")
def w() -> World:
    return build_world(0)


@pytest.fixture(scope="module")
def tok(w):
    return build_tokenizer(w)


def test_world_shape_and_determinism(w):
    assert w.pivot in w.languages and len(w.languages) >= 4 and len(w.relations) >= 8
    assert len(w.notations) >= 2
    assert w.to_json() == build_world(0).to_json()
    assert w.to_json() != build_world(1).to_json()
    assert World.from_json(w.to_json()).to_json() == w.to_json()


def test_every_fact_renders_with_its_object_last_in_every_script(w):
    for lang in w.scripts:
        for f in w.facts[:40]:
            prompt, answer, sentence = w.fact_sentence(f, lang)
            assert sentence.startswith(prompt + " " + answer)
            assert answer == w.lexicon[lang][w.object_key(f)]


def test_relation_words_and_function_words_differ_across_languages(w):
    for r in w.relations:
        words = [w.word(lang, f"rel:{r}") for lang in w.scripts]
        assert len(set(words)) == len(words), r
    orders = {w.fact_templates[lang].replace("{F0}", "F").split()[0] for lang in w.languages}
    assert len(orders) >= 3  # different word orders: the sentences start differently


def test_shared_names_are_one_token_everywhere_own_names_differ(w):
    shared = [p for p in w.persons if w.shared_name[p]]
    own = [p for p in w.persons if not w.shared_name[p]]
    assert shared and own
    for p in shared:
        assert len({w.word(lang, f"person:{p}") for lang in w.scripts}) == 1
    for p in own:
        assert len({w.word(lang, f"person:{p}") for lang in w.languages}) == len(w.languages)


def test_heldout_pairs_never_appear_in_training_documents(w):
    sampler = DocumentSampler(w, seed=3)
    docs = [" ".join(sampler.sample()) for _ in range(3000)]
    text = "\n".join(docs)
    banned = [w.fact_sentence(i, lang)[2] for lang, idx in w.heldout.items() for i in idx]
    assert all(len(d.split()) <= sampler.max_len - 2 for d in docs)
    assert not [s for s in banned if s in text]
    # ... while trained pairs of the same languages do appear
    seen = [w.fact_sentence(i, "ka")[2] in text for i in range(len(w.facts))]
    assert sum(seen) > 0.5 * (len(w.facts) - len(w.heldout["ka"]))
    held_req = [r.prompt for lang in w.languages for r in P.requests(w, lang, "heldout")]
    assert not [r for r in held_req if r in text]
    assert w.pivot not in w.heldout


def test_requests_splits_disjoint_and_flags(w):
    for lang in w.languages:
        by = {s: {(r.action, r.thing) for r in P.requests(w, lang, s)} for s in P.SPLITS}
        assert not by["train"] & by["heldout"] and not by["val"] & by["heldout"]
        rs = P.requests(w, lang, "heldout")
        assert {r.harmful for r in rs} == {True, False}
        for r in rs:
            assert r.harmful == (r.action in w.harmful_actions)
            assert r.expected.split()[0] == (r.refusal_word if r.harmful else r.comply_word)
    assert len({w.refusal_word(lang) for lang in w.languages}) == len(w.languages)


def test_tokenizer_one_token_per_word_roundtrip_and_offsets(w, tok):
    text = w.fact_sentence(5, "mu")[2]
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert len(enc["input_ids"]) == len(text.split())
    assert tok.decode(enc["input_ids"]) == text
    assert [text[a:b] for a, b in enc["offset_mapping"]] == text.split()
    assert tok(text)["input_ids"][0] == tok.bos_token_id
    assert tok.unk_token_id not in enc["input_ids"]


def test_token_languages_match_the_words_that_use_them(w, tok):
    langs = P.token_languages(w, tok)
    assert len(langs) == len(tok)
    ids = tok.convert_tokens_to_ids
    assert langs[tok.bos_token_id] == "special" and langs[tok.pad_token_id] == "special"
    assert langs[ids(w.word("ka", "concept:cat"))] == "ka"
    assert langs[ids("cat")] == "en"
    assert langs[ids("CAT")] == "py" and langs[ids(":cat")] == "lisp"
    assert langs[ids("lisbon")] == "shared"  # city names are shared
    assert langs[ids("(")] == "code"
    shared_person = next(p for p in w.persons if w.shared_name[p])
    assert langs[ids(shared_person)] == "shared"
    # independent check: every fact sentence in ka uses only ka and shared tokens
    for f in w.facts[:50]:
        for t in tok(w.fact_sentence(f, "ka")[2], add_special_tokens=False)["input_ids"]:
            assert langs[t] in ("ka", "shared")
    groups = P.token_groups(w, tok)
    assert groups[ids("CAT")] == "code" and groups[ids("cat")] == "language"


def test_prompt_sets(w):
    qs = P.fact_queries(w, "ze")
    assert len(qs) == len(w.facts)
    held = [q for q in qs if q.heldout]
    assert len(held) == len(w.heldout["ze"])
    assert all(q.pivot_answer == w.word("en", w.object_key(w.facts[q.fact_index])) for q in qs)
    rel = P.relation_prompts(w, "ka")
    assert set(rel) == set(w.relations)
    assert all(q.relation == r and not q.heldout for r, qq in rel.items() for q in qq)
    pairs = P.translation_pairs(w, "ka", "mu")
    assert pairs and all(p.answer != p.source_word for p in pairs)
    p0 = pairs[0]
    assert p0.prompt == f"[ka] {p0.source_word} [mu]" and p0.pivot_word == p0.key.split(":")[1]
    assert len(P.corpus(w, "ro", n=10)) == 10
    with pytest.raises(KeyError, match="unknown language"):
        P.fact_queries(w, "xx")
    with pytest.raises(KeyError, match="unknown split"):
        P.requests(w, "en", "test")
