"""The real SmolLM2-135M-Instruct from PyPI (slow tier; skipped when it is not available)."""

from __future__ import annotations

import pytest
import torch

import lens

pytestmark = pytest.mark.slow


def test_shape_and_no_bos(smol):
    assert (smol.cfg.n_layers, smol.cfg.d_model, smol.cfg.d_mlp, smol.cfg.d_vocab) == (
        30,
        576,
        1536,
        49152,
    )
    b = lens.tokens.batch(smol, ["The capital of France is"])
    assert b.tokens[0, 0].item() != smol.tokenizer.convert_tokens_to_ids("<|im_start|>")


def test_capital_of_france(smol):
    b = lens.tokens.batch(smol, ["The capital of France is"])
    with torch.no_grad():
        logits = smol(b.tokens, attention_mask=b.attention_mask)
    assert smol.tokenizer.decode(logits[0, -1].argmax()) == " Paris"
