"""stories260k, a real trained tiny Llama: offline load, documented greedy text, generation."""

from __future__ import annotations

import torch

import lens
from tests.conftest import stories_path

PROMPT_IDS = [1, 403, 407, 261, 378]
README_TEXT = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "park. One day,"
)


def plain_greedy(model, ids, steps):
    x = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(steps):
            x = torch.cat([x, model(x)[0, -1].argmax().view(1, 1)], dim=1)
    return x[0].tolist()


def test_loads_offline_and_reproduces_readme(stories_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ids = plain_greedy(stories_model, PROMPT_IDS, 40)
    text = stories_model.tokenizer.decode(ids, skip_special_tokens=True)
    assert text.startswith(README_TEXT)


def test_same_text_inside_empty_apply(stories_model):
    with lens.apply(stories_model):
        ids = plain_greedy(stories_model, PROMPT_IDS, 40)
    assert stories_model.tokenizer.decode(ids, skip_special_tokens=True).startswith(README_TEXT)


def test_lens_generate_matches_plain_greedy_and_transformers(stories_model):
    """Batched, left-padded lens generation == a plain loop == transformers' greedy generate."""
    from transformers import AutoModelForCausalLM

    prompts = ["Once upon a time", "The dog ran to the", "Lily had a"]
    b = lens.tokens.batch(stories_model, prompts)
    new = lens.generate.greedy_tokens(stories_model, b, max_new_tokens=12, stop_at_eos=False)
    hf = AutoModelForCausalLM.from_pretrained(stories_path(), attn_implementation="eager").eval()
    for row, prompt in enumerate(prompts):
        ids = b.tokens[row][b.attention_mask[row].bool()].tolist()
        expected = plain_greedy(stories_model, ids, 12)[len(ids) :]
        assert new[row].tolist() == expected
        with torch.no_grad():
            out = hf.generate(
                torch.tensor([ids]),
                max_new_tokens=12,
                do_sample=False,
                min_new_tokens=12,
                pad_token_id=0,
            )
        assert out[0, len(ids) :].tolist() == expected, prompt
