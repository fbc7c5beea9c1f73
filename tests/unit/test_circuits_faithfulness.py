"""Circuits and faithfulness: pruning keeps exactly the edges on input -> logits paths; the
full graph gives 1, the empty circuit 0; batching pairs or sizes changes nothing."""

from __future__ import annotations

import pytest
import torch

import lens
from interventions.edge_graph import layout
from lens.circuits import Circuit, attribute, faithfulness, faithfulness_curve
from lens.circuits.graph import Graph, prune

CLEAN = torch.tensor([[5, 9, 2, 7, 11, 4], [3, 3, 8, 1, 4, 9], [6, 2, 2, 8, 1, 7]])
CORRUPT = torch.tensor([[5, 9, 20, 7, 11, 4], [3, 30, 8, 1, 4, 9], [6, 2, 40, 8, 1, 7]])
KW = dict(answer=[17, 23, 5], wrong=[40, 41, 6])


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request):
    torch.set_num_threads(1)
    return lens.load_model(lens.tiny_config(request.param))


def _mask(lay, edges):
    m = torch.zeros(len(lay.writers), len(lay.readers), dtype=torch.bool)
    for w, r in edges:
        m[lay.writer_index(w), lay.reader_index(r)] = True
    return m


def test_prune_by_hand():
    lay = layout(lens.load_model(lens.tiny_config("llama")))
    dangling = _mask(lay, [("a0.h0", "logits"), ("input", "a1.h2<q>"), ("input", "m0")])
    assert not prune(lay, dangling).any()  # a0.h0 never reached; a1.h2, m0 feed nothing
    kept = [("input", "a0.kv0<k>"), ("a0.h1", "m1"), ("m1", "logits"), ("input", "a2.h0<q>")]
    got = Circuit(lay, prune(lay, _mask(lay, kept))).edges
    # kv0 feeds query heads 0 and 1 (2 query heads per kv head); a2.h0 reaches nothing
    assert sorted(got) == sorted(kept[:3])


def test_full_is_one_empty_is_zero_and_batching_changes_nothing(model):
    g = attribute(model, CLEAN, CORRUPT, method="eap", **KW)
    full = faithfulness(model, g.top(g.n_edges), CLEAN, CORRUPT, **KW)
    empty = faithfulness(model, g.top(0), CLEAN, CORRUPT, **KW)
    assert full == pytest.approx(1.0, abs=1e-6)
    assert empty == pytest.approx(0.0, abs=1e-4)
    c = g.top(20)
    one = faithfulness(model, c, CLEAN, CORRUPT, batch_size=1, **KW)
    three = faithfulness(model, c, CLEAN, CORRUPT, batch_size=3, **KW)
    assert one == pytest.approx(three, abs=1e-5)
    assert abs(one) > 1e-3 and abs(one - 1) > 1e-3  # neither trivial answer
    curve = faithfulness_curve(model, g, CLEAN, CORRUPT, sizes=[5, 20], batch_size=2, **KW)
    assert curve.sizes[0] == 0 and curve.sizes[-1] == g.n_edges
    assert curve.faithfulness[2] == pytest.approx(three, abs=1e-5)  # sizes [0, 5, 20, all]
    f = torch.tensor(curve.faithfulness, dtype=torch.float64)
    x = torch.tensor(curve.n_edges, dtype=torch.float64) / g.n_edges
    area = sum(float((x[i + 1] - x[i]) * (f[i + 1] + f[i]) / 2) for i in range(len(x) - 1))
    assert curve.cpr == pytest.approx(area, abs=1e-9)


def test_graph_save_load_and_top(tmp_path, model):
    g = attribute(model, CLEAN[:1], CORRUPT[:1], answer=17, method="eap")
    again = Graph.load(g.save(tmp_path / "g"))
    assert torch.equal(again.scores, g.scores) and again.layout == g.layout
    ranked = g.ranked()
    assert abs(ranked[0][2]) >= abs(ranked[1][2]) >= abs(ranked[-1][2])
    c = g.top(30)
    assert c.n_edges <= 30
    assert torch.equal(prune(g.layout, c.mask), c.mask)
    with pytest.raises(KeyError, match="unknown reader"):
        g.score("input", "a0.h99<q>")
