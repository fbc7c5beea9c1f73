"""The refusal study on the real SmolLM2-135M-Instruct (slow tier): the model hardly refuses
harmful requests in its ChatML template, so the study must stop at its baseline and say so,
with no direction and no findings beyond the failed precondition."""

from __future__ import annotations

import time

import pytest
import torch

from lens.studies import StudyResult, refusal
from lens.studies.refusal.requests import REFUSAL_PHRASES

pytestmark = pytest.mark.slow


def test_refusal_stops_at_the_baseline(smol, tmp_path):
    config = refusal.Config(languages=["en"], n_examples=2, progress=False)
    start = time.perf_counter()
    res = refusal.run(smol, config)
    print(f"\nrefusal (en) on SmolLM2: {time.perf_counter() - start:.0f} s; {res.headline()}")
    d = res.data
    assert d.prompt_format.startswith("the model's chat template")
    b = d.baseline["en"]
    assert b["n_harmful"] == 20 and b["harmful"] < config.min_baseline_refusal
    assert not d.studied and d.directions == {} and len(res.findings) == 1
    out = res.save(tmp_path / "rf")
    assert "not studied" in res.headline()
    assert StudyResult.load(out).data == d
    # an example reply recomputed with a plain greedy loop on the ChatML prompt (to EOS)
    text, reply = b["harmful_examples"][0]
    tok = smol.tokenizer
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    new = []
    with torch.no_grad():
        for _ in range(config.example_tokens):
            nxt = int(smol(torch.tensor([ids + new]))[0, -1].argmax())
            new.append(nxt)
            if nxt == tok.eos_token_id:
                break
    assert tok.decode(new, skip_special_tokens=True) == reply
    assert not any(reply.startswith(p) for p in REFUSAL_PHRASES["en"])
