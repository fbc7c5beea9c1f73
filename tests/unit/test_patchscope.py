"""Patchscopes (lens.patchscope): the identity case reproduces the unpatched run, each pair
equals a manual TransformerLens hook, prefix reuse equals the plain run, bad input leaves
nothing installed, results save, load and plot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lens
from lens.hooks import count_hooks
from lens.patchscope import Target, patchscope

SOURCE = "Lily went to the park with her dog"
OTHER = "The little bird sang a song"


def ids_of(model, text: str) -> list[int]:
    return lens.tokens.batch(model, [text]).tokens[0].tolist()


@pytest.mark.parametrize("position", [-1, 3])
def test_same_layer_same_prompt_reproduces_the_unpatched_run(stories_model, position):
    ids = ids_of(stories_model, SOURCE)
    res = patchscope(
        stories_model, SOURCE, target=Target(tuple(ids), position), source_position=position,
        top_k=5,
    )  # fmt: skip
    with torch.no_grad():
        probs = stories_model(torch.tensor([ids]))[0, -1].softmax(-1)
    want_p, want_i = probs.topk(5)
    n = stories_model.cfg.n_layers
    assert res.source_layers.tolist() == list(range(n))
    for row in range(n):
        assert res.top_ids[row].tolist() == want_i.tolist()
        np.testing.assert_allclose(res.top_probs[row], want_p.numpy(), atol=1e-5)
    other = patchscope(stories_model, OTHER, target=Target(tuple(ids), position), top_k=5)
    assert not np.allclose(other.top_probs, res.top_probs, atol=1e-3)  # a real patch


def manual(model, source_ids, s_layer, s_col, target_ids, t_layer, t_col, site="resid_post"):
    """The same patch with TransformerLens's own run_with_cache / run_with_hooks."""
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([source_ids]))
        state = cache[f"blocks.{s_layer}.hook_{site}"][0, s_col].clone()

        def write(act, hook):
            act = act.clone()
            act[:, t_col] = state
            return act

        logits = model.run_with_hooks(
            torch.tensor([target_ids]), fwd_hooks=[(f"blocks.{t_layer}.hook_{site}", write)]
        )
    return logits[0, -1].softmax(-1)


@pytest.mark.parametrize("use_cache", [None, False])
def test_every_pair_equals_a_manual_hook(stories_model, use_cache):
    target = lens.patchscope.identity()
    t_ids = ids_of(stories_model, target.prompt)
    s_ids = ids_of(stories_model, SOURCE)
    before = count_hooks(stories_model)
    res = patchscope(
        stories_model, SOURCE, target=target, source_layers=[0, 2, 4], target_layers=[1, 3],
        source_position=4, top_k=4, batch_size=4, use_cache=use_cache,
    )  # fmt: skip
    assert count_hooks(stories_model) == before
    assert list(zip(res.source_layers, res.target_layers)) == [
        (s, t) for s in (0, 2, 4) for t in (1, 3)
    ]
    for row, (s, t) in enumerate(zip(res.source_layers, res.target_layers)):
        probs = manual(stories_model, s_ids, int(s), 4, t_ids, int(t), len(t_ids) - 1)
        want_p, want_i = probs.topk(4)
        assert res.top_ids[row].tolist() == want_i.tolist()
        np.testing.assert_allclose(res.top_probs[row], want_p.numpy(), atol=1e-5)
    assert len({tuple(r) for r in res.top_ids.tolist()}) > 1


def test_attribute_placeholder_and_generation_cached_equals_uncached(stories_model):
    target = lens.patchscope.attribute("Once upon a time there was a x who", max_new_tokens=6)
    a = patchscope(stories_model, SOURCE, target=target, source_layers=[1, 3], top_k=3)
    b = patchscope(
        stories_model, SOURCE, target=target, source_layers=[1, 3], top_k=3, use_cache=False
    )
    t_ids = ids_of(stories_model, target.prompt)
    assert stories_model.tokenizer.decode([t_ids[a.target_position]]).strip() == "x"
    assert a.target_position < len(t_ids) - 1  # not the last token: the prefix cache is used
    np.testing.assert_allclose(a.top_probs, b.top_probs, atol=1e-5)
    assert a.generated_ids is not None and b.generated_ids is not None
    assert a.generated_ids.shape == (2, 6)
    assert np.array_equal(a.generated_ids, b.generated_ids)
    assert a.texts is not None and all(isinstance(t, str) for t in a.texts)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(source_position=40), "source position 40 is beyond the source prompt"),
        (dict(target_layers=[9]), "layers 0..4"),
        (dict(source_layers=[-9]), "layers 0..4"),
        (dict(target=Target("Once upon a time", 30)), "outside the target prompt"),
        (dict(target=Target("Once upon a time", placeholder="zebra")), "placeholder"),
        (dict(site="resid_mid"), "site"),
        (dict(target="nope"), "unknown patchscope preset"),
        (dict(top_k=0), "top_k"),
    ],
)
def test_bad_input_is_refused_with_nothing_left_installed(stories_model, kw, match):
    before = count_hooks(stories_model)
    with pytest.raises(ValueError, match=match):
        patchscope(stories_model, SOURCE, **kw)
    assert count_hooks(stories_model) == before


def test_save_load_plot(stories_model, tmp_path):
    res = patchscope(stories_model, SOURCE, target_layers="all", top_k=3)
    n = stories_model.cfg.n_layers
    assert len(res.source_layers) == n * n
    back = lens.patchscope.PatchscopeResult.load(res.save(tmp_path / "r"))
    assert np.array_equal(back.top_ids, res.top_ids) and back.site == res.site
    assert back.token_strings == res.token_strings and back.target_name == "identity"
    src, tgt, grid = res.grid("top_probs")
    assert grid.shape == (n, n) and src == tgt == list(range(n))
    assert res.plot(tmp_path / "grid.png").stat().st_size > 1000
    diag = patchscope(stories_model, SOURCE, top_k=3)
    assert diag.plot(tmp_path / "diag.png").stat().st_size > 1000
