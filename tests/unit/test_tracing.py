"""causal_trace: invariants of restoration and one cell against a hand-written noisy run."""

from __future__ import annotations

import pytest
import torch

import lens
from lens.patching.tracing import ROLES, causal_trace

TOKENS = [[7, 9, 2, 7, 11, 4]]
SUBJECT = [[2, 3]]


def test_restoring_the_last_state_gives_the_clean_run_and_earlier_tokens_do_nothing(
    native_model,
):
    res = causal_trace(native_model, TOKENS, SUBJECT, answer=5, samples=3, progress=False)
    last_layer = native_model.cfg.n_layers - 1
    assert abs(float(res.restored["resid"][0, last_layer, -1] - res.clean_prob[0])) < 1e-6
    for kind in ("resid", "mlp", "attn"):  # before the subject nothing was corrupted
        assert res.indirect_effect(kind)[0, :, :2].abs().max() < 1e-6
    assert res.indirect_effect("resid").abs().max() > 1e-4
    assert res.by_role("resid").shape == (native_model.cfg.n_layers, len(ROLES))


def test_one_cell_equals_a_hand_written_noisy_run(native_model):
    res = causal_trace(
        native_model, TOKENS, SUBJECT, answer=5, samples=1, kinds=["resid"], noise=3.0,
        progress=False,
    )  # fmt: skip
    tokens = torch.tensor(TOKENS)
    _, cache = native_model.run_with_cache(tokens)
    embed = cache["hook_embed"]
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(embed.shape, generator=gen) * 3.0 * float(embed.std())
    noise[:, [0, 1, 4, 5]] = 0

    def add_noise(act, hook):
        return act + noise

    def restore(act, hook):
        act = act.clone()
        act[:, 3] = cache["blocks.1.hook_resid_post"][:, 3]
        return act

    logits = native_model.run_with_hooks(
        tokens, fwd_hooks=[("hook_embed", add_noise), ("blocks.1.hook_resid_post", restore)]
    )
    prob = logits[0, -1].softmax(-1)[5]
    assert abs(float(res.restored["resid"][0, 1, 3]) - float(prob)) < 1e-5


def test_bad_subject(native_model):
    before = lens.count_hooks(native_model)
    with pytest.raises(ValueError, match="not real tokens"):
        causal_trace(native_model, TOKENS, [[9]], answer=5, progress=False)
    with pytest.raises(ValueError, match="unknown kinds"):
        causal_trace(native_model, TOKENS, SUBJECT, answer=5, kinds=["mlpp"], progress=False)
    assert lens.count_hooks(native_model) == before
