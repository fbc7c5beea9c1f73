"""KV-cached generation on the real SmolLM2-135M-Instruct (slow tier): equal tokens to the
uncached loop and to transformers' own greedy generate on the same weights, steered too."""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import ActivationAddition
from lens import smollm2

pytestmark = pytest.mark.slow

PROMPTS = ["The capital of France is", "Write a short poem about the sea.", "1, 2, 3,"]


def test_cached_equals_uncached_and_transformers(smol):
    from transformers import AutoModelForCausalLM

    out = lens.generate.generate_tokens(smol, PROMPTS, max_new_tokens=24, stop_at_eos=False)
    assert out.cached
    plain = lens.generate.greedy_tokens(
        smol, PROMPTS, max_new_tokens=24, stop_at_eos=False, use_cache=False
    )
    assert torch.equal(out.tokens, plain)
    hf = AutoModelForCausalLM.from_pretrained(
        smollm2.smollm2_folder(download=False), attn_implementation="eager"
    ).eval()
    hf.generation_config.eos_token_id = None  # lens runs on past EOS here: so must transformers
    b = out.prompt
    for row in range(len(PROMPTS)):
        ids = b.tokens[row][b.attention_mask[row].bool()]
        with torch.no_grad():
            want = hf.generate(
                ids[None], max_new_tokens=24, do_sample=False,
                pad_token_id=smol.tokenizer.pad_token_id or 0,
            )  # fmt: skip
        assert out.tokens[row].tolist() == want[0, len(ids) :].tolist(), PROMPTS[row]


def test_steered_cached_equals_uncached(smol):
    vec = torch.randn(smol.cfg.d_model, generator=torch.Generator().manual_seed(0)) * 8
    steer = ActivationAddition(vec, layer=10, positions="generated")
    kw = dict(max_new_tokens=16, stop_at_eos=False, interventions=[steer])
    cached = lens.generate.greedy_tokens(smol, PROMPTS, **kw)
    plain = lens.generate.greedy_tokens(smol, PROMPTS, use_cache=False, **kw)
    free = lens.generate.greedy_tokens(smol, PROMPTS, max_new_tokens=16, stop_at_eos=False)
    assert torch.equal(cached, plain)
    assert not torch.equal(cached, free)
