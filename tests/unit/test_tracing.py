"""causal_trace against hand-written noisy runs (TransformerLens ``run_with_hooks``, not lens's
engine): ROME's clipped windows, its sigma recipe, skipped cells, batching."""

from __future__ import annotations

import pytest
import torch

import lens
from lens.patching.tracing import ROLES, causal_trace, window_layers

TOKENS = [[7, 9, 2, 7, 11, 4]]
SUBJECT = [[2, 3]]
TOL = 1e-6  # float32 forwards in different batch shapes


@torch.no_grad()
def hand_trace(model, tokens, subject, answer, *, sigma, samples, seed=0, restore=()):
    """ROME's procedure written out: noise the subject's embeddings with the documented draws
    (``randn(samples, subject_tokens, d_model)`` seeded), restore ``restore`` = [(hook, pos)]
    from a clean run, mean answer probability over samples."""
    toks = torch.tensor([tokens])
    _, cache = model.run_with_cache(toks)
    gen = torch.Generator().manual_seed(seed)
    draws = torch.randn(samples, len(subject), model.cfg.d_model, generator=gen) * sigma
    probs = []
    for s in range(samples):

        def add_noise(act, hook, s=s):
            act = act.clone()
            act[0, subject] += draws[s]
            return act

        hooks = [("hook_embed", add_noise)]
        for name, pos in restore:
            value = cache[name][0, pos]

            def fixed(act, hook, value=value, pos=pos):
                act = act.clone()
                act[0, pos] = value
                return act

            hooks.append((name, fixed))
        logits = model.run_with_hooks(toks, fwd_hooks=hooks)
        probs.append(float(logits[0, -1].softmax(-1)[answer]))
    return sum(probs) / samples, cache


@torch.no_grad()
def prompt_sigma(model, tokens, scale=3.0):
    _, cache = model.run_with_cache(torch.tensor([tokens]))
    return scale * float(cache["hook_embed"].std())


def test_window_layers_is_romes_clipped_range():
    assert window_layers(0, 10, 30) == list(range(0, 5))
    assert window_layers(29, 10, 30) == list(range(24, 30))
    assert window_layers(12, 10, 30) == list(range(7, 17))
    assert window_layers(2, 3, 6) == [1, 2, 3] and window_layers(5, 4, 6) == [3, 4, 5]


@pytest.mark.parametrize("kind,site", [("attn", "attn_out"), ("mlp", "mlp_out")])
def test_clipped_window_rows_equal_restoring_the_clipped_layers_by_hand(kind, site):
    model = lens.load_model(lens.tiny_config("llama", n_layers=6))
    res = causal_trace(
        model, TOKENS, SUBJECT, answer=5, kinds=[kind], window=4, samples=2, progress=False
    )
    sigma = prompt_sigma(model, TOKENS[0])
    assert abs(res.sigma - sigma) < 1e-6 and res.noise_from == "prompts"
    pos = 3  # the last subject token
    for centre in range(6):
        layers = range(max(0, centre - 2), min(6, centre + 2))  # ROME's clip, window 4
        restore = [(f"blocks.{la}.hook_{site}", pos) for la in layers]
        want, _ = hand_trace(model, TOKENS[0], [2, 3], 5, sigma=sigma, samples=2, restore=restore)
        assert abs(float(res.restored[kind][0, centre, pos]) - want) < TOL, centre
    # at the edge the clipped window (layers 0-1) is not the shifted one (layers 0-3)
    shifted = [(f"blocks.{la}.hook_{site}", pos) for la in range(4)]
    other, _ = hand_trace(model, TOKENS[0], [2, 3], 5, sigma=sigma, samples=2, restore=shifted)
    assert abs(float(res.restored[kind][0, 0, pos]) - other) > 1e-5


def test_every_hidden_state_cell_equals_a_hand_written_noisy_run(native_model):
    res = causal_trace(
        native_model, TOKENS, SUBJECT, answer=5, samples=2, kinds=["resid"], progress=False
    )
    sigma = prompt_sigma(native_model, TOKENS[0])
    corrupt, _ = hand_trace(native_model, TOKENS[0], [2, 3], 5, sigma=sigma, samples=2)
    assert abs(float(res.corrupt_prob[0]) - corrupt) < TOL
    for layer in range(native_model.cfg.n_layers):
        for pos in range(2, 6):
            restore = [(f"blocks.{layer}.hook_resid_post", pos)]
            want, _ = hand_trace(
                native_model, TOKENS[0], [2, 3], 5, sigma=sigma, samples=2, restore=restore
            )
            assert abs(float(res.restored["resid"][0, layer, pos]) - want) < TOL, (layer, pos)
    assert res.indirect_effect("resid").abs().max() > 1e-4


def test_romes_sigma_is_noise_times_the_std_of_the_subjects_token_embeddings(native_model):
    subjects = [[3, 4], [5], [9, 10, 11]]
    res = causal_trace(
        native_model, TOKENS, SUBJECT, answer=5, samples=1, kinds=["resid"], noise=3.0,
        noise_from=subjects, progress=False,
    )  # fmt: skip
    manual = 3.0 * float(native_model.W_E[[3, 4, 5, 9, 10, 11]].detach().std())
    assert abs(res.sigma - manual) < 1e-6 and res.noise_tokens == 6
    assert res.noise_from == "subjects" and "subject strings" in res.noise_rule()
    assert abs(res.sigma - prompt_sigma(native_model, TOKENS[0])) > 1e-3  # not the prompt's
    corrupt, _ = hand_trace(native_model, TOKENS[0], [2, 3], 5, sigma=manual, samples=1)
    assert abs(float(res.corrupt_prob[0]) - corrupt) < TOL


def test_skipped_cells_hold_exactly_what_running_them_gives(native_model):
    tokens = [[7, 9, 2, 7, 11, 4], [3, 8, 8, 6]]  # two lengths: the short one is padded
    subjects = [[2, 3], [4]]
    kw = dict(answer=5, samples=2, window=2, progress=False)
    fast = causal_trace(native_model, tokens, subjects, **kw)
    full = causal_trace(native_model, tokens, subjects, compute_all=True, **kw)
    for kind in ("resid", "mlp", "attn"):
        skipped = fast.skipped[kind]
        assert skipped[0, :, :2].all() and skipped[1, :, :4].all()  # before the subject, padding
        assert skipped[0, -1, 2:5].all() == (kind == "resid") and not skipped[0, :, 5].any()
        assert not full.skipped[kind][full.mask.bool()[:, None].expand_as(skipped)].any()
        where = skipped & full.mask.bool()[:, None]
        ran = full.restored[kind][where]
        corrupt = full.corrupt_prob[:, None, None].expand_as(skipped)[where]
        assert (ran - corrupt).abs().max() < 1e-8  # zero effect when computed
        assert torch.equal(fast.restored[kind][~skipped], full.restored[kind][~skipped])
        assert fast.indirect_effect(kind)[~skipped].abs().max() > 1e-5


def test_batched_equals_one_at_a_time(native_model):
    tokens = [[7, 9, 2, 7, 11, 4], [3, 8, 8, 6]]
    subjects = [[2, 3], [3]]
    kw = dict(samples=2, window=2, noise_from=[[1, 2, 3]], progress=False)  # one sigma
    together = causal_trace(native_model, tokens, subjects, answer=[5, 6], **kw)
    single = causal_trace(native_model, tokens, subjects, answer=[5, 6], batch_size=2, **kw)
    for kind in ("resid", "mlp", "attn"):
        assert (together.restored[kind] - single.restored[kind]).abs().max() < TOL
    alone = causal_trace(native_model, tokens[1:], [[1]], answer=6, **kw)
    assert (together.restored["mlp"][1, :, 2:] - alone.restored["mlp"][0]).abs().max() < TOL
    assert abs(float(together.corrupt_prob[1] - alone.corrupt_prob[0])) < TOL


def test_restoring_the_last_state_gives_the_clean_run(native_model):
    res = causal_trace(native_model, TOKENS, SUBJECT, answer=5, samples=3, progress=False)
    last_layer = native_model.cfg.n_layers - 1
    assert abs(float(res.restored["resid"][0, last_layer, -1] - res.clean_prob[0])) < 1e-6
    assert res.by_role("resid").shape == (native_model.cfg.n_layers, len(ROLES))


def test_bad_subject(native_model):
    before = lens.count_hooks(native_model)
    with pytest.raises(ValueError, match="not real tokens"):
        causal_trace(native_model, TOKENS, [[9]], answer=5, progress=False)
    with pytest.raises(ValueError, match="unknown kinds"):
        causal_trace(native_model, TOKENS, SUBJECT, answer=5, kinds=["mlpp"], progress=False)
    assert lens.count_hooks(native_model) == before
