"""Logit lens on the real SmolLM2-135M-Instruct (slow tier; skipped when it is not available).

Prompts written for lens: "The capital of X is" -> " Capital". The model's own answer must be
the top-1 token of the last layer's readout, the readout's last layer must equal the model's
own next-token distribution, and the first layer where the answer enters the top 10 is
reported (run with ``-s`` to see the table).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import lens

pytestmark = pytest.mark.slow

CAPITALS = {
    "The capital of France is": " Paris",
    "The capital of Germany is": " Berlin",
    "The capital of Italy is": " Rome",
    "The capital of Japan is": " Tokyo",
    "The capital of Spain is": " Madrid",
}


@pytest.fixture(scope="module")
def lens_result(smol):
    start = time.perf_counter()
    res = lens.logit_lens(smol, list(CAPITALS), top_k=10, targets=list(CAPITALS.values()))
    print(
        f"\nlogit lens, {len(CAPITALS)} prompts x {smol.cfg.n_layers} layers: "
        f"{time.perf_counter() - start:.1f} s"
    )
    return res


def test_answer_is_top1_at_the_last_layer(smol, lens_result):
    last = lens_result.top_ids[-1, :, 0, 0]
    assert [smol.tokenizer.decode([int(i)]) for i in last] == list(CAPITALS.values())


def test_last_layer_equals_the_model_output(smol, lens_result):
    b = lens.tokens.batch(smol, list(CAPITALS), padding_side="left")
    with torch.no_grad():
        logits = smol(b.tokens, attention_mask=b.attention_mask)[:, -1]
    probs = torch.softmax(logits.double(), -1)
    ids = torch.tensor(lens_result.target_ids)
    np.testing.assert_allclose(
        lens_result.target_probs[-1, :, 0], probs[torch.arange(len(ids)), ids].numpy(), atol=1e-5
    )


def test_first_layer_in_top10(lens_result):
    """Report where each answer enters (and stays in) the top 10; the table is the finding."""
    n_layers = lens_result.top_ids.shape[0]
    print("\nprompt | answer | first layer in top-10 | rank per layer")
    for row, (prompt, answer) in enumerate(CAPITALS.items()):
        ranks = lens_result.target_ranks[:, row, 0]
        in_top = ranks < 10
        # the rank is the number of tokens with a larger logit: rank < 10 <=> in the top 10
        assert np.array_equal(
            in_top, (lens_result.top_ids[:, row, 0] == lens_result.target_ids[row]).any(-1)
        )
        first = int(np.argmax(in_top)) if in_top.any() else None
        print(f"{prompt!r} | {answer!r} | {first} | {ranks.tolist()}")
        assert first is not None and first <= n_layers - 1


def test_concept_space_study_reduced(smol, tmp_path):
    """The concept_space study (Wendler et al. tasks from the built-in translations) at reduced
    size: it finishes, writes its report, and its last-layer probabilities are the model's own
    next-token probabilities (plain forward, independent of the logit lens)."""
    from lens.studies import StudyResult, concept_space

    config = concept_space.Config(sources=["fr"], targets=["de"], max_items=6, batch_size=8)
    start = time.perf_counter()
    res = concept_space.run(smol, config)
    print(f"\nconcept_space, reduced, on SmolLM2: {time.perf_counter() - start:.0f} s")
    print(res.headline())
    assert [p["name"] for p in res.data.panels] == ["fr->de", "de->de"]
    out = res.save(tmp_path / "cs")
    assert (out / "report.md").read_text().startswith("# Concept space")
    assert StudyResult.load(out).data == res.data
    panel = res.data.panels[0]
    from lens.studies.concept_space.tasks import first_token_after

    ids = [first_token_after(smol, 'Français: "" - Deutsch: "', w) for w in panel["answers"]]
    b = lens.tokens.batch(smol, panel["prompts"], padding_side="left")
    with torch.no_grad():
        probs = torch.softmax(smol(b.tokens, attention_mask=b.attention_mask)[:, -1].double(), -1)
    own = probs[torch.arange(len(ids)), torch.tensor(ids)].mean().item()
    assert panel["mass"]["target answer"][-1] == pytest.approx(own, abs=1e-5)
