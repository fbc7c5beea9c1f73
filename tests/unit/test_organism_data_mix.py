"""The organism's configurable data mix (``DataMix`` / ``TrainConfig``): the defaults draw
exactly the shipped model's documents, and each knob does what its name says."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from lens.cli import build_parser
from lens.cli.organism import train_config
from lens.organism import prompts as P
from lens.organism import token_languages
from lens.organism.documents import KIND_WEIGHTS, DataMix, DocumentSampler
from lens.organism.tokenizer import build_tokenizer
from lens.organism.train import TrainConfig, train
from lens.organism.world import World
from lens.organism.world_build import build_world

# Recorded on main (commit 1737407) before the mix became configurable: sha256 of the first 400
# documents (words joined by " ", documents by "\n") of DocumentSampler(build_world(0), seed).
RECORDED = {
    0: "003c98a26234c234c4c67d31430107dff762e99d41d3847b9427a997201fcaeb",
    3: "570616430910a8a26d602e7c2098d01582abc2a20d07532332448c88e482667f",
}
FIRST_DOC_SEED_3 = "gel marco gerol logo . gel marco gure uma . gel marco geder levedul ."


@pytest.fixture(scope="module")
def w() -> World:
    return build_world(0)


def _digest(sampler: DocumentSampler, n: int = 400) -> tuple[str, list[str]]:
    docs = [" ".join(sampler.sample()) for _ in range(n)]
    return hashlib.sha256("\n".join(docs).encode()).hexdigest(), docs


@pytest.mark.parametrize("seed", [0, 3])
def test_default_mix_draws_exactly_the_shipped_documents(w, seed):
    for sampler in (
        DocumentSampler(w, seed=seed),
        DocumentSampler(w, seed=seed, mix=TrainConfig().data_mix()),
    ):
        digest, docs = _digest(sampler)
        assert digest == RECORDED[seed]
        if seed == 3:
            assert docs[0].startswith(FIRST_DOC_SEED_3)
    assert TrainConfig().data_mix() == DataMix()
    assert dict(DataMix().kind_weights) == KIND_WEIGHTS


def _fact_doc_language(doc: list[str], langs: dict[str, str]) -> str:
    counts = Counter(langs[x] for x in doc if langs[x] not in ("shared", "special", "code"))
    return counts.most_common(1)[0][0]


def test_pivot_fact_share_makes_english_fact_documents_dominate(w):
    tok = build_tokenizer(w)
    vocab = tok.get_vocab()
    langs = {word: token_languages(w, tok)[i] for word, i in vocab.items()}
    shares = {}
    for p in (0.24, 0.9):
        s = DocumentSampler(w, seed=1, mix=DataMix(pivot_fact_share=p))
        counts = Counter(_fact_doc_language(s._facts(), langs) for _ in range(600))
        shares[p] = {k: v / 600 for k, v in counts.items()}
    assert shares[0.24]["en"] < 0.35
    assert shares[0.9]["en"] > 0.85
    others = [v for k, v in shares[0.9].items() if k != "en"]
    assert shares[0.9]["en"] >= 10 * max(others)


def test_parallel_pivot_share_and_kind_weights(w):
    mix = DataMix(kind_weights=(("parallel", 1.0),), parallel_pivot_share=1.0)
    s = DocumentSampler(w, seed=0, mix=mix)
    docs = [s.sample() for _ in range(200)]
    assert all(w.tags[w.pivot] in d for d in docs)
    tags = set(w.tags.values())
    assert all(sum(x in tags for x in d) >= 2 for d in docs)  # only parallel documents
    partners = Counter(x for d in docs for x in d if x in tags and x != w.tags[w.pivot])
    assert len(partners) == len(w.scripts) - 1  # every other script is paired with the pivot
    # the default (None) pairs random scripts: many documents without the pivot
    s0 = DocumentSampler(w, seed=0, mix=DataMix(kind_weights=(("parallel", 1.0),)))
    assert sum(w.tags[w.pivot] not in s0.sample() for _ in range(200)) > 100


def test_refusal_examples_per_language_keeps_few_harmful_requests(w):
    k = 3
    s = DocumentSampler(w, seed=0, mix=DataMix(refusal_examples_per_language=k))
    default = DocumentSampler(w, seed=0)
    for lang in w.languages:
        full = w.request_splits[lang]["train"]
        kept = s.chat_pairs[lang]
        harmful = [p for p in kept if w.is_harmful(p[0])]
        harmless = [p for p in full if not w.is_harmful(p[0])]
        assert all(p in full for p in kept)
        if lang == w.pivot:
            assert kept == full == default.chat_pairs[lang]
        else:
            assert len(harmful) == k and len({p[0] for p in harmful}) == k
            assert [p for p in kept if not w.is_harmful(p[0])] == harmless
    again = DocumentSampler(w, seed=5, mix=DataMix(refusal_examples_per_language=k))
    assert again.chat_pairs == s.chat_pairs  # fixed per language, not per training seed
    # chat documents in a non-pivot language refuse only the kept requests
    mix = DataMix(
        kind_weights=(("chat", 1.0),), chat_pivot_share=0.0, refusal_examples_per_language=k
    )
    s = DocumentSampler(w, seed=0, mix=mix)
    text = "\n".join(" ".join(s.sample()) for _ in range(400))
    kept_prompts = {w.request_prompt(lang, *p) for lang in w.languages for p in s.chat_pairs[lang]}
    for lang in w.languages:
        if lang == w.pivot:
            assert w.request_prompt(lang, *w.request_splits[lang]["train"][0]) not in text
            continue
        for r in P.requests(w, lang, "train"):
            if r.harmful and r.prompt not in kept_prompts:
                assert r.prompt not in text


def test_heldout_pairs_never_appear_under_a_skewed_mix(w):
    mix = DataMix(
        kind_weights=(("facts", 0.5), ("mixed", 0.04), ("parallel", 0.22), ("chat", 0.24)),
        pivot_fact_share=0.75,
        parallel_pivot_share=1.0,
        chat_pivot_share=0.5,
        refusal_examples_per_language=3,
    )
    s = DocumentSampler(w, seed=3, mix=mix)
    text = "\n".join(" ".join(s.sample()) for _ in range(2000))
    banned = [w.fact_sentence(i, lang)[2] for lang, idx in w.heldout.items() for i in idx]
    assert not [x for x in banned if x in text]
    held_req = [r.prompt for lang in w.languages for r in P.requests(w, lang, "heldout")]
    assert not [r for r in held_req if r in text]


def test_invalid_mixes_are_refused():
    with pytest.raises(ValueError, match="unknown document kinds"):
        DataMix(kind_weights=(("novels", 1.0),))
    with pytest.raises(ValueError, match="pivot_fact_share"):
        DataMix(pivot_fact_share=1.5)
    with pytest.raises(ValueError, match="refusal_examples_per_language"):
        DataMix(refusal_examples_per_language=-1)


def test_cli_options_set_the_train_config():
    parser = build_parser()
    base = ["organism", "train", "--out", "x"]
    assert train_config(parser.parse_args(base)) == TrainConfig()
    args = parser.parse_args(
        [
            *base,
            "--d-model",
            "128",
            "--n-heads",
            "8",
            "--kind-weight",
            "parallel=0.3",
            "--pivot-fact-share",
            "0.75",
            "--parallel-pivot-share",
            "1",
            "--chat-pivot-share",
            "0.5",
            "--refusal-examples-per-language",
            "3",
        ]
    )
    cfg = train_config(args)
    assert (cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.d_mlp) == (128, 8, 8, 256)
    assert cfg.kind_weights == {**KIND_WEIGHTS, "parallel": 0.3}
    mix = cfg.data_mix()
    assert (mix.pivot_fact_share, mix.parallel_pivot_share, mix.chat_pivot_share) == (
        0.75,
        1.0,
        0.5,
    )
    assert mix.refusal_examples_per_language == 3
    with pytest.raises(ValueError, match="KIND=W"):
        train_config(parser.parse_args([*base, "--kind-weight", "novels=1"]))
    with pytest.raises(ValueError, match="W must be a number"):
        train_config(parser.parse_args([*base, "--kind-weight", "facts=lots"]))


@pytest.mark.parametrize(
    ("options", "fields", "words"),
    [
        (["--d-model", "-5"], {"d_model": -5}, "d_model=-5"),
        (["--steps", "0"], {"steps": 0}, "steps=0"),
        (["--d-model", "100", "--n-heads", "8"], {"n_heads": 8, "n_kv_heads": 8, "d_model": 100},
         "multiple of n_heads=8"),
    ],
)  # fmt: skip
def test_impossible_sizes_are_refused_before_training(options, fields, words, tmp_path):
    args = build_parser().parse_args(["organism", "train", "--out", "x", *options])
    with pytest.raises(ValueError, match=words):
        train_config(args)
    with pytest.raises(ValueError, match=words):  # the Python entry point checks the same
        train(TrainConfig(**fields), tmp_path / "m")
    assert not (tmp_path / "m").exists()
