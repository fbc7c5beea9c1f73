"""Padded batches: batched == one-by-one, positions from the mask, spans, bad input."""

from __future__ import annotations

import pytest
import torch

import lens
from lens.tokens import batch, last_positions

PROMPTS = [[5, 17, 3, 99, 42, 7], [8, 1], [60, 61, 62, 63]]


def one_by_one_last_logits(model, prompts):
    return torch.stack([model(torch.tensor([p]))[0, -1] for p in prompts])


@pytest.mark.parametrize("side", ["left", "right"])
def test_batched_equals_one_by_one_native(native_model, side):
    b = batch(native_model, PROMPTS, padding_side=side)
    logits = native_model(b.tokens, attention_mask=b.attention_mask)
    batched = logits[torch.arange(len(b)), b.last_positions]
    torch.testing.assert_close(
        batched, one_by_one_last_logits(native_model, PROMPTS), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("side", ["left", "right"])
def test_batched_equals_one_by_one_hf(hf_model, side):
    b = batch(hf_model, PROMPTS, padding_side=side)
    logits = hf_model(b.tokens, attention_mask=b.attention_mask)
    batched = logits[torch.arange(len(b)), b.last_positions]
    torch.testing.assert_close(
        batched, one_by_one_last_logits(hf_model, PROMPTS), rtol=0, atol=1e-5
    )


def test_positions_from_mask():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0]])
    assert last_positions(mask).tolist() == [3, 2, 0]
    with pytest.raises(ValueError, match="no real tokens"):
        last_positions(torch.tensor([[0, 0]]))


def test_batch_layout(native_model):
    left = batch(native_model, [[1, 2, 3], [4]], padding_side="left")
    right = batch(native_model, [[1, 2, 3], [4]], padding_side="right")
    assert left.attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert right.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert left.tokens[1, 2] == 4 and right.tokens[1, 0] == 4
    assert left.last_positions.tolist() == [2, 2] and right.last_positions.tolist() == [2, 0]
    assert left.positions("last").sum() == 2
    assert torch.equal(right.positions("all"), right.attention_mask.bool())


def test_text_prompts_bos_and_span(stories_model):
    b = batch(stories_model, ["Once upon a time", "The cat sat"], padding_side="left")
    assert b.tokens[0][b.attention_mask[0].bool()].tolist() == [1, 403, 407, 261, 378]  # README
    assert b.bos_added
    span = b.span(1, "cat")
    pieces = [stories_model.tokenizer.decode([t]) for t in b.tokens[1, span].tolist()]
    assert "".join(pieces).strip() == "cat"
    no_bos = batch(stories_model, ["Once upon a time"], prepend_bos=False)
    assert no_bos.tokens[0].tolist() == [403, 407, 261, 378]
    with pytest.raises(ValueError, match="not in"):
        b.span(0, "dragon")


@pytest.mark.parametrize(
    "prompts, kwargs, match",
    [
        ([], {}, "no prompts"),
        ([[1, 2], []], {}, "no tokens"),
        ([[1, 2]], {"padding_side": "middle"}, "padding_side"),
        ([[1, "a"]], {}, "all strings or all lists"),
    ],
)
def test_bad_input(native_model, prompts, kwargs, match):
    with pytest.raises(ValueError, match=match):
        batch(native_model, prompts, **kwargs)


def test_text_without_tokenizer_is_clear(native_model):
    with pytest.raises(ValueError, match="no tokenizer"):
        batch(native_model, ["hello"])


def test_last_position_intervention_sees_mask(native_model):
    """Probe positions='last' follows the attention mask for both padding sides."""
    for side in ("left", "right"):
        b = lens.tokens.batch(native_model, PROMPTS, padding_side=side)
        probe = lens.Probe("blocks.2.hook_resid_post", positions="last")
        full = lens.Probe("blocks.2.hook_resid_post")
        with lens.apply(native_model, probes=[probe, full]):
            native_model(b.tokens, attention_mask=b.attention_mask)
        expected = full.value[torch.arange(len(b)), b.last_positions]
        torch.testing.assert_close(probe.value, expected, rtol=0, atol=0)
