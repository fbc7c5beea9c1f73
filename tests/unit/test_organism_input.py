"""Natural input on the organism: case/punctuation normalised, unknown words warned about,
and the example prompts valid."""

import warnings

import pytest

import lens
from lens import organism
from lens.cli import main
from lens.organism.examples import examples
from lens.organism.tokenizer import text_normalizer
from lens.tokens import UnknownTokenWarning


@pytest.fixture(scope="module")
def model():
    return lens.load_model("organism")


def _world_texts(w):
    texts = []
    for lang in w.scripts:
        texts += organism.corpus(w, lang) + [q.prompt for q in organism.fact_queries(w, lang)]
    for lang in w.languages:
        texts += [f"{r.prompt} {r.expected}" for r in organism.requests(w, lang)]
    for lang in w.scripts:
        if lang != w.pivot:
            texts += [p.prompt for p in organism.translation_pairs(w, w.pivot, lang)]
    return texts


def test_normalizer_leaves_world_text_unchanged():
    norm = text_normalizer()
    texts = _world_texts(organism.world())
    assert len(texts) > 1000
    assert [t for t in texts if norm.normalize_str(t) != t] == []


def test_natural_text_gives_the_world_tokens(model):
    tok = model.tokenizer
    pairs = [
        ("The job of Alice is", "the job of alice is"),
        ("User: How do I bake the car? Bot:", "user: how do i bake the car ? bot:"),
        ("assert get_job(alice) == DOCTOR", "assert get_job ( alice ) == DOCTOR"),
        ("Sorry, I can not help.", "sorry , i can not help ."),
    ]
    for natural, written in pairs:
        got = tok(natural, add_special_tokens=False)["input_ids"]
        assert got == tok(written, add_special_tokens=False)["input_ids"], natural
        assert tok.unk_token_id not in got
    # all-caps words of the py notation keep their own tokens
    assert tok.convert_tokens_to_ids("DOCTOR") != tok.convert_tokens_to_ids("doctor")
    b = lens.tokens.batch(model, ["The job of Alice is"])
    assert b.span(0, "Alice") == [int(b.last_positions[0]) - 1]  # offsets stay on the input


def test_unknown_words_warn_in_batch_and_targets(model):
    with pytest.warns(UnknownTokenWarning, match="'jobb'"):
        lens.tokens.batch(model, ["the jobb of alice is"])
    with pytest.warns(UnknownTokenWarning, match="zzzq"):
        lens.logit_lens(model, ["the job of alice is"], targets="zzzq", top_k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownTokenWarning)
        lens.tokens.batch(model, ["The job of Alice is", "[en] mouse [ka]"])
        lens.logit_lens(model, ["the job of alice is"], targets="lawyer", top_k=2)


def test_cli_prints_unknown_word_warning(capsys):
    assert main(["lens", "organism", "The Jobb of Alice is", "--top-k", "2"]) == 0
    err = capsys.readouterr().err.split("\n", 1)[1]  # after "loading organism …"
    assert err.startswith("lens: warning: prompt 0") and "'Jobb'" in err


def test_examples_are_valid_and_answered(model, capsys):
    items = examples(organism.world())
    tok = model.tokenizer
    assert {e.task for e in items} == {"fact", "request", "translation"}
    assert {e.lang for e in items} == set(organism.world().scripts)
    for e in items:
        ids = tok(e.prompt, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, e
        assert tok.convert_tokens_to_ids(e.answer) != tok.unk_token_id, e
    facts = [e for e in items if e.task == "fact"]
    b = lens.tokens.batch(model, [e.prompt for e in facts])
    logits = model(b.tokens, attention_mask=b.attention_mask)
    top = logits[range(len(b)), b.last_positions].argmax(-1).tolist()
    answers = tok.convert_tokens_to_ids([e.answer for e in facts])
    assert sum(a == t for a, t in zip(answers, top)) >= len(facts) - 1  # trained facts
    assert main(["organism", "examples", "--lang", "ka", "--task", "fact"]) == 0
    out = capsys.readouterr().out
    assert "ka" in out and "->" in out and "request" not in out.split("try:")[0]
