"""One token rule: one table of inputs through logit-lens targets, patching answers, DLA
answers and causal tracing gives the same id (checked against the model's own logits) or
the same error everywhere, on the organism (word-level), stories260k (SentencePiece) and a
random Llama without a tokenizer."""

from __future__ import annotations

import warnings

import pytest
import torch

import lens
from lens.attribution import direct_logit_attribution
from lens.patching import activation_patching, causal_trace
from lens.tokens import TokenError, UnknownTokenWarning

# per model: clean prompt, corrupt prompt (same length), subject of the clean prompt
SETUPS = {
    "organism": ("the job of alice is", "the job of bob is", "alice"),
    "stories260k": (
        "Once upon a time there was a little girl",
        "Once upon a time there was a little boy",
        "girl",
    ),
    "tiny": ([1, 2, 3, 4], [1, 5, 3, 4], [1]),
}


@pytest.fixture(scope="module")
def models(request):
    out = {"organism": lens.load_model("organism"), "tiny": lens.load_model(lens.tiny_config())}
    try:
        out["stories260k"] = request.getfixturevalue("stories_model")
    except pytest.skip.Exception:
        pass
    for m in out.values():
        lens.models.small_model_threads(m)
    return out


def vocab_id(model, piece):
    """The id of one vocabulary entry, read from the tokenizer's own table."""
    return int(model.tokenizer.convert_tokens_to_ids(piece))


def table(name, model):
    """(input, expected id or (error type, message part), for a logit-lens target)."""
    vocab = int(model.cfg.d_vocab)
    ids = [("id:42", 42), (42, 42), (vocab, (TokenError, "out of range")),
           (-1, (TokenError, "out of range")), ("id:-1", (TokenError, "out of range"))]  # fmt: skip
    if name == "tiny":
        no_tok = (TokenError, "no tokenizer")
        return ids + [("Paris", no_tok), (" Paris", no_tok)]
    if name == "organism":
        word = vocab_id(model, "alice")
        return ids + [
            ("alice", word), (" alice", word),
            ("alice lawyer", (TokenError, r"is 2 tokens \['alice', 'lawyer'\]")),
            ("Paris", (TokenError, "does not know")), (" Paris", (TokenError, "does not know")),
        ]  # fmt: skip
    word = vocab_id(model, "▁Once")  # SentencePiece: the word-start piece
    return ids + [
        ("Once", word), (" Once", word),
        ("Paris", (TokenError, r"is 3 tokens \['P', 'ar', 'is'\]")),
        (" Paris", (TokenError, r"is 4 tokens \['▁', 'P', 'ar', 'is'\]")),
    ]  # fmt: skip


def last_logits(model, prompt):
    b = lens.tokens.batch(model, [prompt])
    with torch.no_grad():
        return model(b.tokens, attention_mask=b.attention_mask)[0, -1].double()


def through_every_api(model, name, token):
    """The id each API used for ``token``, read back from its own numbers."""
    clean, corrupt, subject = SETUPS[name]
    logits = last_logits(model, clean)
    ll = lens.logit_lens(model, [clean], positions="last", targets=token, top_k=1)
    probe = ll.target_ids.tolist()[0]
    wrong = (probe + 1) % int(model.cfg.d_vocab)
    patch = activation_patching(
        model, [clean], [corrupt], answer=token, wrong=wrong, sites=["resid_pre"],
        layers=[0], positions="last", progress=False,
    )  # fmt: skip
    assert abs(float(patch.clean_metric[0]) - float(logits[probe] - logits[wrong])) < 1e-4
    dla = direct_logit_attribution(model, [clean], answer=token)
    assert abs(float(dla.total[0]) - float(logits[probe])) < 1e-4
    trace = causal_trace(model, [clean], [subject], answer=token, kinds=["resid"], samples=1,
                         progress=False)  # fmt: skip
    assert abs(float(trace.clean_prob[0]) - float(logits.softmax(-1)[probe])) < 1e-5
    return {"logit_lens": probe, "patching": patch.meta["answer_ids"][0],
            "dla": probe, "causal_trace": probe}  # fmt: skip


def every_api(model, name, token):
    """Each API called with ``token`` as its answer / target."""
    clean, corrupt, subject = SETUPS[name]
    return {
        "patching": lambda: activation_patching(
            model, [clean], [corrupt], answer=token, sites=["resid_pre"], layers=[0],
            progress=False),
        "dla": lambda: direct_logit_attribution(model, [clean], answer=token),
        "causal_trace": lambda: causal_trace(
            model, [clean], [subject], answer=token, samples=1, progress=False),
        "logit_lens": lambda: lens.logit_lens(model, [clean], targets=token),
    }  # fmt: skip


def test_one_table_through_every_api(models):
    checked = {"ids": 0, "errors": 0}
    for name, model in models.items():
        for token, expected in table(name, model):
            if isinstance(expected, int):
                got = through_every_api(model, name, token)
                assert set(got.values()) == {expected}, (name, token, got)
                checked["ids"] += 1
                continue
            kind, part = expected
            calls = every_api(model, name, token)
            for api, call in calls.items():
                if api == "logit_lens" and "does not know" in part:
                    continue  # a display: warns instead (test below)
                with pytest.raises(kind, match=part):
                    call()
                checked["errors"] += 1
    assert checked["ids"] >= 6 and checked["errors"] >= 4 * 10, checked


def test_unknown_target_only_warns_in_the_logit_lens(models):
    model = models["organism"]
    unk = model.tokenizer.unk_token_id
    with pytest.warns(UnknownTokenWarning, match="'Paris'"):
        res = lens.logit_lens(model, ["the job of alice is"], targets="Paris")
    assert res.target_ids.tolist() == [unk]


def test_word_start_is_the_tokenizers_own_piece_in_context(models):
    """'Once' is what the tokenizer gives the word after other text (not its glued form)."""
    if "stories260k" not in models:
        pytest.skip("stories260k absent")
    model = models["stories260k"]
    in_text = model.tokenizer.encode("Lily said Once", add_special_tokens=False)[-1]
    assert lens.tokens.token_id(model, "Once") == in_text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lens.tokens.token_id(model, ".") == vocab_id(model, ".")  # as written
    assert lens.tokens.token_id(model, "Paris", multi="first") == vocab_id(model, "P")
