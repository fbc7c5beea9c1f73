"""Patching on stories260k (a real trained tiny Llama) against transformer_lens.patching."""

from __future__ import annotations

import pytest
import torch

import lens
from lens.patching import activation_patching
from tests.unit.test_patching import tl_reference


def test_equals_transformer_lens_on_stories(stories_model):
    clean = lens.tokens.batch(stories_model, ["Lily saw a big dog. The big"]).tokens
    corrupt = lens.tokens.batch(stories_model, ["Lily saw a big cat. The big"]).tokens
    assert clean.shape == corrupt.shape
    with torch.no_grad():  # each prompt's own top next token: 'do(g)' vs 'c(at)'
        answer = [int(stories_model(clean)[0, -1].argmax())]
        wrong = [int(stories_model(corrupt)[0, -1].argmax())]
    assert answer != wrong
    for direction in ("denoise", "noise"):
        ours = activation_patching(
            stories_model, clean, corrupt, answer=answer, wrong=wrong,
            direction=direction, progress=False,
        )  # fmt: skip
        ref = tl_reference(stories_model, clean, corrupt, answer, wrong, direction)
        for site, expected in ref.items():
            torch.testing.assert_close(ours.values(site).float(), expected, atol=1e-5, rtol=0)


def test_multi_token_answer_is_refused(stories_model):
    clean = lens.tokens.batch(stories_model, ["Lily went to the park"]).tokens
    with pytest.raises(ValueError, match="tokens"):
        activation_patching(stories_model, clean, clean, answer=" elephantine", progress=False)


def test_dla_parts_sum_on_stories(stories_model):
    from lens.attribution import direct_logit_attribution

    prompts = ["Lily saw a big dog. The big", "Once upon a time, there was a"]
    answer, wrong = [428, 400], [280, 261]
    dla = direct_logit_attribution(stories_model, prompts, answer=answer, wrong=wrong)
    torch.testing.assert_close(dla.parts_sum(), dla.total, atol=1e-4, rtol=0)
    b = lens.tokens.batch(stories_model, prompts)
    with torch.no_grad():
        logits = stories_model(b.tokens, attention_mask=b.attention_mask)
    last = logits[torch.arange(2), b.last_positions]
    rows = torch.arange(2)
    expected = last[rows, answer] - last[rows, wrong]
    torch.testing.assert_close(dla.total, expected, atol=1e-4, rtol=0)
    assert dla.heads.abs().max() > 1e-2
