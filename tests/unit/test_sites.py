"""One site vocabulary and one layer rule (``interventions.sites``) across every API.

The reference for each ``(layer, site)`` request is one manual TransformerLens hook
(``model.hooks``) on a hook name written out by hand below; every lens API given the same
``layer`` (negative ones included) and ``site`` must read (or write) exactly that activation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lens
from interventions import ActivationAddition
from interventions.sites import (
    SITES,
    check_site,
    hook_name,
    resolve_layer,
    resolve_layers,
    site_of,
)
from lens.finders import diff_in_means
from lens.patching import activation_patching
from lens.stats import PositionMeans, layer_sites

PROMPTS = [[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
# (layer as a user gives it, site, the hook it must read on a 3-layer model: written by hand)
CASES = [
    (0, "resid_pre", "blocks.0.hook_resid_pre"),
    (-1, "resid_post", "blocks.2.hook_resid_post"),
    (1, "resid_mid", "blocks.1.hook_resid_mid"),
    (-1, "mlp_in", "blocks.2.ln2.hook_in"),  # TL's hook_mlp_in never fires in 4.3
    (-2, "attn_out", "blocks.1.hook_attn_out"),
    (2, "mlp_out", "blocks.2.hook_mlp_out"),
    (-3, "mlp_post", "blocks.0.mlp.hook_post"),
    (1, "mlp_pre", "blocks.1.mlp.hook_pre"),
    (-1, "z", "blocks.2.attn.hook_z"),
]
IDS = [f"{site}@{layer}" for layer, site, _ in CASES]
D_MODEL_SITES = ("resid_pre", "resid_post", "resid_mid", "attn_out", "mlp_out")
PATCH_SITES = ("resid_pre", "resid_post", "attn_out", "mlp_out", "z")


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def model(request):
    return lens.load_model(lens.tiny_config(request.param))


def manual(model, name: str, tokens: torch.Tensor) -> torch.Tensor:
    """The activation at hook ``name`` from a plain TransformerLens hook (no lens code)."""
    got: dict[str, torch.Tensor] = {}

    def grab(act, hook):
        got["x"] = act.detach().clone()

    with torch.no_grad(), model.hooks(fwd_hooks=[(name, grab)]):
        model(tokens)
    return got["x"]


def plain_decode(model, h: torch.Tensor) -> torch.Tensor:
    """softmax(h @ W_U + b_U) in float32: the logit lens with norm="none", by hand."""
    logits = h.float() @ model.W_U.detach().float()
    if getattr(model, "b_U", None) is not None:
        logits = logits + model.b_U.detach().float()
    return torch.softmax(logits, -1)


# ---------------------------------------------------------------- the one layer rule


@pytest.mark.parametrize(
    ("layers", "want"),
    [
        ("all", [0, 1, 2]),
        (1, [1]),
        (-1, [2]),
        (-3, [0]),
        ([0, -1], [0, 2]),
        ([2, 0], [2, 0]),  # order kept
        (range(3), [0, 1, 2]),
        (np.int64(1), [1]),
        (np.array([0, -2]), [0, 1]),
        (torch.tensor([-1, 0]), [2, 0]),
    ],
)
def test_resolve_layers_table(model, layers, want):
    assert resolve_layers(model, layers) == want


@pytest.mark.parametrize(
    ("layers", "error", "match"),
    [
        (3, ValueError, r"layer 3 is out of range: this model has layers 0\.\.2"),
        (-4, ValueError, r"this model has layers 0\.\.2 \(or -3\.\.-1"),
        ([0, 5], ValueError, "this model has layers 0..2"),
        ([1, -2], ValueError, r"duplicates: \[1, -2\] means layers \[1, 1\]"),
        ([], ValueError, "empty"),
        ("some", ValueError, "'all', an int or a list"),
        (True, TypeError, "must be an int"),
        (1.5, TypeError, "must be an int"),
        (["0"], TypeError, "must be an int"),
    ],
)
def test_resolve_layers_errors(model, layers, error, match):
    with pytest.raises(error, match=match):
        resolve_layers(model, layers)


def test_resolve_layer_counts_from_the_end(model):
    assert [resolve_layer(model, x) for x in (-3, -2, -1, 0, 1, 2)] == [0, 1, 2, 0, 1, 2]


# ---------------------------------------------------------------- the one vocabulary


@pytest.mark.parametrize(("layer", "site", "name"), CASES, ids=IDS)
def test_hook_name_and_site_of(model, layer, site, name):
    assert hook_name(site, resolve_layer(model, layer)) == name
    assert name in model.hook_dict
    assert site_of(name) == (site, resolve_layer(model, layer))


def test_every_site_has_a_hook_on_both_families(model):
    for site in SITES:
        for layer in range(int(model.cfg.n_layers)):
            assert hook_name(site, layer) in model.hook_dict, site


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("hook_resid_pre", "resid_pre"),
        ("hook_resid_post", "resid_post"),
        ("hook_attn_out", "attn_out"),
        ("hook_mlp_out", "mlp_out"),
        ("mlp.hook_post", "mlp_post"),
        ("mlp.hook_pre", "mlp_pre"),
        ("attn.hook_z", "z"),
        ("hook_mlp_in", "mlp_in"),
    ],
)
def test_old_hook_spellings_are_refused_naming_the_short_name(old, new):
    with pytest.raises(ValueError, match=f"write '{new}'"):
        check_site(old)
    with pytest.raises(ValueError, match=f"write '{new}'"):
        hook_name(old, 0)


def test_unknown_sites_and_bad_layers_raise():
    with pytest.raises(ValueError, match="site must be one of"):
        check_site("resid_middle")
    with pytest.raises(ValueError, match="'head' is now called 'z'"):
        check_site("head")
    with pytest.raises(ValueError, match="resolved layer"):
        hook_name("resid_pre", -1)
    assert site_of("hook_embed") is None and site_of("blocks.0.ln1.hook_scale") is None


# ---------------------------------------------------------------- every API, one activation


@pytest.mark.parametrize(("layer", "site", "name"), CASES, ids=IDS)
def test_every_api_reads_the_same_activation(model, layer, site, name):
    tokens = torch.tensor(PROMPTS)
    ref = manual(model, name, tokens)  # [batch, pos, ...]
    last = ref[:, -1].flatten(1)  # [batch, width]: the last token (no padding here)
    resolved = resolve_layer(model, layer)

    # lens.apply + Probe at the site's hook
    probe = lens.Probe(hook_name(site, resolved), positions="last")
    with torch.no_grad(), lens.apply(model, probes=[probe]):
        model(tokens)
    torch.testing.assert_close(probe.value.flatten(1), last, atol=1e-6, rtol=0)

    # lens.stats + lens.collect: one group per prompt, so each sum is that prompt's vector
    acc = PositionMeans.for_model(model, ["a", "b"], site=site, layers=[layer], n_positions=1)
    res = lens.collect(
        model, [(PROMPTS[0], "a"), (PROMPTS[1], "b")], accumulators=[acc], positions="last"
    )
    assert acc.sites == (name,) and list(acc.layers) == [resolved]
    assert res.hooks == [name] and res.sites == [(site, resolved)] and res.positions == "last"
    torch.testing.assert_close(acc.sum[:, 0, 0].float(), last.float(), atol=1e-5, rtol=0)

    # diff-in-means records the site and layer it read
    d = diff_in_means(model, [PROMPTS[0]], [PROMPTS[1]], layers=[layer], site=site,
                      progress=False)  # fmt: skip
    assert d.site == site and d.layers == [resolved] and d.positions == (-1,)
    torch.testing.assert_close(d.directions[0, 0].float(), last[0] - last[1], atol=1e-5, rtol=0)

    # the logit lens (norm="none": decode = softmax(h W_U + b_U), by hand here)
    if site in D_MODEL_SITES:
        ll = lens.logit_lens(model, tokens, layers=[layer], site=site, norm="none", top_k=5)
        assert ll.layers.tolist() == [resolved] and ll.site == site
        assert f"site={site!r}" in repr(ll)
        want = plain_decode(model, last).topk(5, -1)
        assert (ll.top_ids[0, :, 0] == want.indices.numpy()).all()
        np.testing.assert_allclose(ll.top_probs[0, :, 0], want.values.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    ("layer", "site", "name"), [c for c in CASES if c[1] in PATCH_SITES], ids=lambda c: str(c)
)
def test_patching_reads_and_writes_the_named_activation(model, layer, site, name):
    """Each exact-patching cell equals the corrupted run with the clean activation written at
    the hand-named hook and position (the metric: the logit difference at the last token)."""
    clean, corrupt = torch.tensor([PROMPTS[0]]), torch.tensor([[5, 6, 30, 40, 9]])
    answer, wrong = 3, 4
    res = activation_patching(model, clean, corrupt, answer=answer, wrong=wrong, sites=[site],
                              layers=[layer], progress=False)  # fmt: skip
    assert res.sites == [site] and res.layers == [resolve_layer(model, layer)]
    assert f"sites=['{site}']" in repr(res)
    source = manual(model, name, clean)
    head = 1  # for "z", check one head's cells
    for pos in range(clean.shape[1]):

        def put(act, hook, pos=pos):
            out = act.clone()
            if site == "z":
                out[:, pos, head] = source[:, pos, head]
            else:
                out[:, pos] = source[:, pos]
            return out

        with torch.no_grad(), model.hooks(fwd_hooks=[(name, put)]):
            logits = model(corrupt)
        want = float(logits[0, -1, answer] - logits[0, -1, wrong])
        got = res.raw[site][0, 0, pos]
        got = float(got[head] if site == "z" else got)
        assert abs(got - want) < 1e-4, (pos, got, want)
    base = float(res.corrupt_metric[0])
    moved = res.raw[site][0, 0] - base
    assert float(moved.abs().max()) > 1e-4  # patching changed something (the check can fail)


@pytest.mark.parametrize("site", ["resid_pre", "resid_post", "attn_out", "mlp_out"])
def test_activation_addition_writes_the_named_hook(model, site):
    """Writers take the same (layer, site); layer -2 on 3 layers is block 1."""
    tokens = torch.tensor(PROMPTS)
    name = f"blocks.1.hook_{site}"  # attn_out, mlp_out, resid_pre, resid_post: hook_ + site
    v = torch.randn(int(model.cfg.d_model), generator=torch.Generator().manual_seed(0))
    before = manual(model, name, tokens)
    seen = lens.Probe(name)  # runs after the edit on the shared hook point
    with (
        torch.no_grad(),
        lens.apply(model, ActivationAddition(v, -2, 2.0, site=site), probes=[seen]),
    ):
        model(tokens)
    torch.testing.assert_close(seen.value, before + 2.0 * v, atol=1e-5, rtol=0)


def test_addition_defaults_to_the_input_of_the_layer():
    assert ActivationAddition(torch.ones(4), 0).site == "resid_pre"


def test_layer_sites_of_the_stats_take_the_vocabulary(model):
    names, layers, width = layer_sites(model, "z", layers=[-1, 0])
    assert names == ["blocks.2.attn.hook_z", "blocks.0.attn.hook_z"] and layers == [2, 0]
    assert width == int(model.cfg.n_heads) * int(model.cfg.d_head)
    with pytest.raises(ValueError, match="write 'resid_pre'"):
        PositionMeans.for_model(model, ["a"], site="hook_resid_pre")


def test_shortcut_fit_counts_layers_from_the_end_and_records_its_site(model):
    sc = lens.shortcuts.fit(model, [[1, 2, 3, 4]], src_layer=-2, method="lstsq", progress=False)
    assert (sc.src_layer, sc.dst_layer) == (1, 2)
    assert sc.meta["site"] == "resid_post" == sc.site


# ---------------------------------------------------------------- the embedding row


def test_logit_lens_include_embed_decodes_the_embedding_output(model):
    """Row "embed" = the residual stream before block 0: hook_embed (+ hook_pos_embed for
    learned positions), read by hand; equal to blocks.0.hook_resid_pre."""
    tokens = torch.tensor(PROMPTS)
    embed = manual(model, "hook_embed", tokens)
    if "hook_pos_embed" in model.hook_dict:  # GPT-2: learned positions are added
        embed = embed + manual(model, "hook_pos_embed", tokens)
    torch.testing.assert_close(manual(model, "blocks.0.hook_resid_pre", tokens), embed,
                               atol=1e-6, rtol=0)  # fmt: skip
    res = lens.logit_lens(model, tokens, layers=[0], include_embed=True, norm="none", top_k=4,
                          positions="all")  # fmt: skip
    assert res.layers.tolist() == [-1, 0] and res.layer_labels == ["embed", "0"]
    want = plain_decode(model, embed).topk(4, -1)
    assert (res.top_ids[0] == want.indices.numpy()).all()
    np.testing.assert_allclose(res.top_probs[0], want.values.numpy(), atol=1e-5)
    # the embed row is not layer 0's output (so the check above can fail)
    assert not np.allclose(res.top_probs[0], res.top_probs[1], atol=1e-3)
    with pytest.raises(ValueError, match="already reads as layer 0"):
        lens.logit_lens(model, tokens, layers="all", site="resid_pre", include_embed=True)


def test_logit_lens_refuses_old_site_names(model):
    with pytest.raises(ValueError, match="site must be one of"):
        lens.logit_lens(model, [[1, 2]], site="z")
    with pytest.raises(ValueError, match="this model has layers 0..2"):
        lens.logit_lens(model, [[1, 2]], layers=[-4])


def test_the_vocabulary_is_public_on_lens():
    assert lens.Site is not None and lens.hook_name("z", 1) == "blocks.1.attn.hook_z"
    assert lens.resolve_layers is resolve_layers
