"""EAP / EAP-IG edge scores: parity with TransformerLens 4.3's own edge attribution patching,
per-head reader gradients against autograd, EAP-IG at one step equals EAP."""

from __future__ import annotations

import pytest
import torch
from transformer_lens.tools.analysis.attribution_patching import (
    EdgeAttributionConfig,
    attribution_patch,
)

import lens
from interventions.edge_graph import layout
from lens.circuits import attribute

CLEAN = torch.tensor([[5, 9, 2, 7, 11, 4], [3, 3, 8, 1, 4, 9]])
CORRUPT = torch.tensor([[5, 9, 20, 7, 11, 4], [3, 30, 8, 1, 4, 9]])


def _tl_name(node) -> str:
    k, layer, head = node.kind, node.layer, node.head
    return {
        "embed": "input",
        "attn_head_out": f"a{layer}.h{head}",
        "mlp_out": f"m{layer}",
        "q_input": f"a{layer}.h{head}<q>",
        "k_input": f"a{layer}.h{head}<k>",
        "v_input": f"a{layer}.h{head}<v>",
        "mlp_in": f"m{layer}",
        "logits": "logits",
    }[k]


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    """A random HF GPT-2 through boot_transformers (TL's edge sweep needs its attention bridge)."""
    from tests.conftest import save_random_hf

    return lens.load_model(save_random_hf("gpt2", tmp_path_factory.mktemp("gpt2")))


def test_eap_equals_transformer_lens_edge_attribution(gpt2):
    def metric(logits):
        return logits[0, -1, 17] - logits[0, -1, 40]

    tl = attribution_patch(gpt2, CLEAN, CORRUPT, metric, EdgeAttributionConfig(granularity="edge"))
    lay = layout(gpt2)
    ref = torch.zeros(len(lay.writers), len(lay.readers), dtype=torch.float64)
    for (w, r), score in tl.edge_scores.items():  # summed over positions
        ref[lay.writer_index(_tl_name(w)), lay.reader_index(_tl_name(r))] += score
    ours = attribute(gpt2, CLEAN, CORRUPT, answer=17, wrong=40, method="eap", batch_size=1)
    assert ref.abs().max() > 1e-3  # not trivially zero (random GPT-2 init, std 0.02)
    assert ((ref != 0) & ~lay.mask()).sum() == 0  # TL's edge set is a subset of ours
    torch.testing.assert_close(ours.scores.double(), ref, atol=1e-6, rtol=1e-4)  # within 1e-4
    # batching the pairs changes nothing
    both = attribute(gpt2, CLEAN, CORRUPT, answer=17, wrong=40, method="eap", batch_size=2)
    torch.testing.assert_close(both.scores, ours.scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_eap_ig_one_step_is_eap_and_more_steps_differ(family):
    model = lens.load_model(lens.tiny_config(family))
    kw = dict(answer=[17, 23], wrong=[40, 41])
    eap = attribute(model, CLEAN, CORRUPT, method="eap", **kw)
    ig1 = attribute(model, CLEAN, CORRUPT, method="eap-ig", steps=1, **kw)
    ig4 = attribute(model, CLEAN, CORRUPT, method="eap-ig", steps=4, **kw)
    torch.testing.assert_close(ig1.scores, eap.scores, atol=1e-6, rtol=0)
    assert (ig4.scores - eap.scores).abs().max() > 1e-3


@pytest.mark.parametrize("kind,head", [("q", 3), ("k", 1), ("v", 0)])
def test_per_head_reader_gradient_equals_autograd_on_a_separate_copy(kind, head):
    """GQA llama: give one head's q (or one key/value head's k, v) its own copy of the layer-1
    input (a leaf) inside the forward; autograd's gradient on that copy, dotted with the
    input delta, is the score of the edge input -> that reader."""
    from interventions import bridge
    from interventions.edge_graph import qkv_weights

    model = lens.load_model(lens.tiny_config("llama"))
    clean, corrupt = CLEAN[:1], CORRUPT[:1]
    tag = "h" if kind == "q" else "kv"
    g = attribute(model, clean, corrupt, answer=17, wrong=40, method="eap")
    ours = g.score("input", f"a1.{tag}{head}<{kind}>")
    norm = bridge.block_norm_params(model, 1, "ln1")
    w, b = qkv_weights(model, 1, kind)
    seen, leaf = {}, {}

    def keep(act, hook):
        seen["x"] = act

    def split(act, hook):
        leaf["x"] = seen["x"].detach().clone().requires_grad_(True)
        out = act.clone()
        out[:, :, head] = norm.apply(leaf["x"]) @ w[head] + b[head]
        return out

    class Split:
        def hooks(self, model):
            return [("blocks.1.hook_resid_pre", keep), (f"blocks.1.attn.hook_{kind}", split)]

    with torch.enable_grad(), lens.apply(model, Split()):
        logits = model(corrupt)
        (grad,) = torch.autograd.grad(logits[0, -1, 17] - logits[0, -1, 40], [leaf["x"]])
    emb = {}
    for tok, name in ((clean, "c"), (corrupt, "x")):
        p = lens.Probe("blocks.0.hook_resid_pre")
        with torch.no_grad(), lens.apply(model, probes=[p]):
            model(tok)
        emb[name] = p.value
    ref = float(((emb["c"] - emb["x"]) * grad).sum())
    assert abs(ref) > 1e-4
    assert ours == pytest.approx(ref, abs=1e-6, rel=1e-4)


def test_errors_name_the_problem(gpt2):
    with pytest.raises(ValueError, match="3 tokens.*4"):
        attribute(gpt2, [[1, 2, 3]], [[1, 2, 3, 4]], answer=5)
    with pytest.raises(ValueError, match="method"):
        attribute(gpt2, CLEAN, CORRUPT, answer=5, method="patch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ig must be"):
        attribute(gpt2, CLEAN, CORRUPT, answer=5, ig="outputs")  # type: ignore[arg-type]
    g = attribute(gpt2, CLEAN[:1], CORRUPT[:1], answer=5, method="eap")
    with pytest.raises(KeyError, match="unknown writer"):
        g.score("a9.h0", "logits")
    assert lens.count_hooks(gpt2) == 0


def test_transformer_lens_interop_and_faithfulness_parity(gpt2):
    from transformer_lens.tools.analysis.attribution_patching import faithfulness as tl_faith

    from lens.circuits import Graph, faithfulness

    def metric(logits):
        return logits[0, -1, 17] - logits[0, -1, 40]

    tl = attribution_patch(
        gpt2, CLEAN[:1], CORRUPT[:1], metric, EdgeAttributionConfig(granularity="edge")
    )
    ours = attribute(gpt2, CLEAN[:1], CORRUPT[:1], answer=17, wrong=40, method="eap")
    back = Graph.from_transformer_lens(tl.edge_scores, ours.layout)
    torch.testing.assert_close(back.scores, ours.scores, atol=1e-6, rtol=1e-4)
    circuit = ours.top(40)
    assert 0 < circuit.n_edges <= 40
    theirs = tl_faith(gpt2, CLEAN[:1], CORRUPT[:1], metric, circuit.to_transformer_lens(6))
    mine = faithfulness(gpt2, circuit, CLEAN[:1], CORRUPT[:1], answer=17, wrong=40)
    assert abs(mine) > 1e-3 and abs(mine - 1) > 1e-3
    assert mine == pytest.approx(theirs.recovered, abs=1e-4)
    assert len(ours.to_transformer_lens(6)) == 6 * ours.n_edges


@pytest.mark.parametrize("kind", ["LN", "RMS"])
def test_norm_vjp_equals_autograd(kind):
    """The closed-form norm VJP used for every q/k/v reader equals autograd through
    NormParams.apply, for k cotangents at one point (weights and bias not 1 and 0)."""
    from interventions.bridge import NormParams
    from lens.circuits.attribute import norm_vjp

    gen = torch.Generator().manual_seed(0)
    w, b = torch.randn(16, generator=gen), torch.randn(16, generator=gen)
    norm = NormParams(kind, w, b if kind == "LN" else None, 1e-5)
    x = torch.randn(2, 3, 16, generator=gen) + 0.5
    u = torch.randn(2, 3, 4, 16, generator=gen)
    xs = x[:, :, None].expand(u.shape).clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(norm.apply(xs), xs, u)
    got = norm_vjp(norm, x, u)
    assert ref.abs().max() > 1e-2
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
