"""EdgePatch: all edges from the corrupted run give the corrupted logits, none gives clean,
one edge into the logits equals a hand computation; GQA k/v readers patched per kv head."""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import EdgePatch, bridge, from_dict
from interventions.edge_graph import layout
from lens.circuits import writer_outputs
from lens.tokens import as_batch

CLEAN = torch.tensor([[5, 9, 2, 7, 11, 4], [3, 3, 8, 1, 4, 9]])
CORRUPT = torch.tensor([[5, 9, 20, 7, 11, 4], [3, 30, 8, 1, 4, 9]])


@pytest.fixture(params=["gpt2", "llama"])
def model(request):
    torch.set_num_threads(1)
    return lens.load_model(lens.tiny_config(request.param))


def _all_edges(model):
    lay = layout(model)
    return [(lay.writers[w], lay.readers[r]) for w, r in lay.mask().nonzero().tolist()]


def _logits(model, tokens, *interventions):
    with torch.no_grad(), lens.apply(model, *interventions):
        return model(tokens)


def test_all_edges_give_corrupt_none_give_clean(model):
    values = writer_outputs(model, as_batch(model, CORRUPT))
    clean, corrupt = _logits(model, CLEAN), _logits(model, CORRUPT)
    assert (clean - corrupt).abs().max() > 1e-2
    every = EdgePatch(_all_edges(model), source="corrupt", values=values)
    torch.testing.assert_close(_logits(model, CLEAN, every), corrupt, atol=1e-5, rtol=0)
    none = EdgePatch([], source="corrupt", values=values)
    torch.testing.assert_close(_logits(model, CLEAN, none), clean, atol=1e-6, rtol=0)
    assert lens.count_hooks(model) == 0


def test_one_edge_into_the_logits_equals_a_hand_computation(model):
    values = writer_outputs(model, as_batch(model, CORRUPT))
    clean_w = writer_outputs(model, as_batch(model, CLEAN))
    lay = layout(model)
    m0 = lay.writer_index("m0")
    final = lens.Probe("ln_final.hook_in")
    with torch.no_grad(), lens.apply(model, probes=[final]):
        model(CLEAN)
    resid = final.value - clean_w[:, :, m0] + values[:, :, m0]
    w_u, b_u = bridge.unembed(model)
    hand = bridge.final_norm(model).apply(resid) @ w_u
    if b_u is not None:
        hand = hand + b_u
    got = _logits(model, CLEAN, EdgePatch([("m0", "logits")], values=values))
    assert (got - _logits(model, CLEAN)).abs().max() > 1e-3
    torch.testing.assert_close(got, hand, atol=1e-5, rtol=0)


def test_gqa_key_edge_patches_only_its_kv_head():
    """On GQA llama, the edge a0.h1 -> a1.kv0<k> changes layer 1's keys of kv head 0 only, to
    the hand-computed projection of the patched, normalised input."""
    model = lens.load_model(lens.tiny_config("llama"))
    values = writer_outputs(model, as_batch(model, CORRUPT))
    clean_w = writer_outputs(model, as_batch(model, CLEAN))
    lay = layout(model)
    h = lay.writer_index("a0.h1")
    pre, k = lens.Probe("blocks.1.hook_resid_pre"), lens.Probe("blocks.1.attn.hook_k")
    with torch.no_grad(), lens.apply(model, probes=[pre]):
        model(CLEAN)
    x = pre.value - clean_w[:, :, h] + values[:, :, h]
    attn = model.blocks[1].attn
    hand = bridge.block_norm_params(model, 1, "ln1").apply(x) @ attn.W_K[0] + attn.b_K[0]
    patch = EdgePatch([("a0.h1", "a1.kv0<k>")], values=values)
    with torch.no_grad(), lens.apply(model, patch, probes=[k]):
        model(CLEAN)
    clean_k = lens.Probe("blocks.1.attn.hook_k")
    with torch.no_grad(), lens.apply(model, probes=[clean_k]):
        model(CLEAN)
    torch.testing.assert_close(k.value[:, :, 0], hand, atol=1e-5, rtol=0)
    torch.testing.assert_close(k.value[:, :, 1], clean_k.value[:, :, 1], atol=0, rtol=0)
    assert (k.value[:, :, 0] - clean_k.value[:, :, 0]).abs().max() > 1e-3


def test_zero_source_removes_the_input_from_the_logits_path(model):
    lay = layout(model)
    clean_w = writer_outputs(model, as_batch(model, CLEAN))
    final = lens.Probe("ln_final.hook_in")
    with torch.no_grad(), lens.apply(model, EdgePatch([("input", "logits")], source="zero")):
        got = model(CLEAN)
    with torch.no_grad(), lens.apply(model, probes=[final]):
        model(CLEAN)
    w_u, b_u = bridge.unembed(model)
    resid = final.value - clean_w[:, :, lay.writer_index("input")]
    hand = bridge.final_norm(model).apply(resid) @ w_u + (0 if b_u is None else b_u)
    torch.testing.assert_close(got, hand, atol=1e-5, rtol=0)


def test_errors_and_round_trip(model):
    with pytest.raises(ValueError, match="no edge m2 -> a1"):
        with lens.apply(model, EdgePatch([("m2", "a1.h0<q>")], source="zero")):
            pass
    with pytest.raises(KeyError, match="unknown reader"):
        with lens.apply(model, EdgePatch([("input", "a1.h9<q>")], source="zero")):
            pass
    with pytest.raises(ValueError, match="needs values"):
        EdgePatch([("input", "logits")])
    assert lens.count_hooks(model) == 0
    p = EdgePatch([("input", "logits")], source="zero")
    assert from_dict(p.to_dict()).to_dict() == p.to_dict()


def test_a_residual_that_cannot_be_rebuilt_raises_and_leaves_no_hook(model):
    class Extra:  # adds a vector to the residual stream: not a writer
        def hooks(self, model):
            return [("blocks.1.hook_resid_pre", lambda act, hook: act + 1.0)]

    with pytest.raises(ValueError, match="cannot rebuild"):
        with torch.no_grad(), lens.apply(model, Extra(), EdgePatch([("input", "m1")], "zero")):
            model(CLEAN)
    assert lens.count_hooks(model) == 0


def _reference_rows(model, tokens, lay, masks, values, c):
    """Row ``i`` alone, with ``masks[i // c]`` and ``values[i % len(values)]``."""
    out = []
    for i in range(tokens.shape[0]):
        m = masks[i // c]
        edges = [(lay.writers[w], lay.readers[r]) for w, r in m.nonzero().tolist()]
        v = values[i % values.shape[0]][None]
        out.append(_logits(model, tokens[i : i + 1], EdgePatch(edges, values=v)))
    return torch.cat(out)


@pytest.mark.parametrize("n_values", [3, 6, 2])  # values per group of rows / spanning groups
def test_group_masks_equal_each_row_patched_alone(model, n_values):
    """A ``[groups, W, R]`` mask patches row i with mask i // (rows / groups) and values
    i % len(values): equal to every row run alone with its own edge list."""
    gen = torch.Generator().manual_seed(1)
    lay = layout(model)
    tokens = torch.randint(1, 200, (6, 5), generator=gen)
    others = torch.randint(1, 200, (n_values, 5), generator=gen)
    values = writer_outputs(model, as_batch(model, others))
    masks = (torch.rand(2, *lay.mask().shape, generator=gen) < 0.3) & lay.mask()
    got = _logits(model, tokens, EdgePatch(source="corrupt", values=values, mask=masks))
    ref = _reference_rows(model, tokens, lay, masks, values, c=3)
    assert (got - _logits(model, tokens)).abs().max() > 1e-3
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_attention_output_bias_is_part_of_the_rebuild():
    """With a nonzero b_O (trained GPT-2 has one), every reader's input is still rebuilt:
    patching every edge gives the corrupted logits, an edge into an MLP equals the hand sum."""
    model = lens.load_model(lens.tiny_config("gpt2"))
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for layer in range(int(model.cfg.n_layers)):
            b = bridge.b_o(model, layer)
            b.copy_(torch.randn(b.shape, generator=gen))
    values = writer_outputs(model, as_batch(model, CORRUPT))
    every = EdgePatch(_all_edges(model), source="corrupt", values=values)
    corrupt = _logits(model, CORRUPT)
    torch.testing.assert_close(_logits(model, CLEAN, every), corrupt, atol=1e-5, rtol=0)
    clean_w = writer_outputs(model, as_batch(model, CLEAN))
    h = layout(model).writer_index("a1.h0")
    mlp_in = lens.Probe("blocks.1.ln2.hook_in")
    with torch.no_grad(), lens.apply(model, probes=[mlp_in]):
        model(CLEAN)
    hand = mlp_in.value - clean_w[:, :, h] + values[:, :, h]
    patched = lens.Probe("blocks.1.ln2.hook_in")
    with torch.no_grad(), lens.apply(model, EdgePatch([("a1.h0", "m1")], values=values)):
        with lens.apply(model, probes=[patched]):
            model(CLEAN)
    assert (hand - mlp_in.value).abs().max() > 1e-3
    torch.testing.assert_close(patched.value, hand, atol=1e-5, rtol=0)


def test_gradients_flow_through_the_patch(model):
    """Under grad, patching every edge from constant values cuts the logits off the clean
    input (gradient 0 up to rounding), while one edge into the logits keeps the gradient of
    the plain model's other paths (nonzero)."""
    values = writer_outputs(model, as_batch(model, CORRUPT))
    leaf: list[torch.Tensor] = []

    class Leaf:
        def hooks(self, model):
            def fn(act, hook):
                out = act.detach().requires_grad_(True)
                leaf.append(out)
                return out

            return [("hook_embed", fn)]

    def grad_of(*extra):
        leaf.clear()
        with torch.enable_grad(), lens.apply(model, Leaf(), *extra):
            logits = model(CLEAN)
            (g,) = torch.autograd.grad(logits[:, -1].sum(), leaf)
        return logits.detach(), g

    every = EdgePatch(_all_edges(model), source="corrupt", values=values)
    logits, g_all = grad_of(every)
    torch.testing.assert_close(logits, _logits(model, CORRUPT), atol=1e-5, rtol=0)
    _, g_plain = grad_of()
    assert g_all.abs().max() < 1e-4 * g_plain.abs().max()
    _, g_one = grad_of(EdgePatch([("m0", "logits")], values=values))
    assert (g_one - g_plain).abs().max() > 1e-4 and g_one.abs().max() > 1e-3
    assert lens.count_hooks(model) == 0
