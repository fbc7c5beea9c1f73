"""Fuzzing lens.tokens.batch and lens.logit_lens: token-id prompts on a tiny random Llama,
hostile text on the organism, with every argument generated."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lens
from tests.fuzz.property import assert_finite, check, logit_lens_finite
from tests.fuzz.strategies import (
    fuzz,
    layer_arg,
    position_arg,
    text_prompt,
    token_prompt,
)

VOCAB, CTX, LAYERS = 257, 128, 3  # lens.tiny_config("llama")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # unknown-word warnings: wanted


def test_tiny_model_is_what_the_strategies_assume(tiny):
    assert (tiny.cfg.d_vocab, tiny.cfg.n_ctx, tiny.cfg.n_layers) == (VOCAB, CTX, LAYERS)


@fuzz(300)
@given(
    prompts=st.lists(token_prompt(VOCAB, 12), min_size=1, max_size=3),
    layers=st.one_of(st.just("all"), layer_arg(LAYERS)),
    positions=st.one_of(st.sampled_from(["last", "all"]), position_arg(12)),
    top_k=st.one_of(st.integers(1, 5), st.integers(-1, VOCAB + 1)),
    site=st.sampled_from(["resid_post", "resid_pre", "resid_mid", "resid_post", "mlp_out", "x"]),
    padding_side=st.sampled_from(["left", "right", "left", "right", "middle"]),
    targets=st.one_of(st.none(), st.integers(0, VOCAB - 1), st.lists(st.integers(0, VOCAB - 1))),
    stop_early=st.booleans(),
)
def test_logit_lens_on_token_ids(
    tiny, prompts, layers, positions, top_k, site, padding_side, targets, stop_early
):
    check(
        "logit_lens (token ids)",
        tiny,
        lambda: lens.logit_lens(
            tiny,
            prompts,
            layers=layers,
            positions=positions,
            top_k=top_k,
            site=site,
            padding_side=padding_side,
            targets=targets,
            stop_early=stop_early,
        ),
        logit_lens_finite,
    )


@fuzz(200)
@given(
    prompts=st.lists(text_prompt, min_size=1, max_size=3),
    targets=st.one_of(st.none(), text_prompt, st.integers(-3, 800)),
    positions=st.sampled_from(["last", "all"]),
)
def test_logit_lens_on_hostile_text(organism, prompts, targets, positions):
    check(
        "logit_lens (text)",
        organism,
        lambda: lens.logit_lens(organism, prompts, targets=targets, positions=positions, top_k=3),
        logit_lens_finite,
    )


@fuzz(300)
@given(
    prompts=st.one_of(
        st.lists(text_prompt, max_size=3),
        text_prompt,
        st.lists(token_prompt(769, 8), max_size=3),
    ),
    padding_side=st.sampled_from(["left", "right", "up"]),
    max_length=st.one_of(st.none(), st.integers(-2, 70)),
)
def test_tokens_batch(organism, prompts, padding_side, max_length):
    def finite(b):
        assert b.tokens.shape == b.attention_mask.shape and b.tokens.ndim == 2
        assert int(b.tokens.min()) >= 0 and int(b.tokens.max()) < organism.cfg.d_vocab
        assert_finite(b.last_positions)

    check(
        "tokens.batch",
        organism,
        lambda: lens.tokens.batch(
            organism, prompts, padding_side=padding_side, max_length=max_length
        ),
        finite,
    )
