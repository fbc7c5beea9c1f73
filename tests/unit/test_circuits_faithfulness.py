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


def _prune_by_search(lay, keep):
    """Independent pruning: an edge stays if its writer is reached from ``input`` and its
    reader's component (the heads or MLP it feeds; ``logits`` itself) reaches ``logits``,
    both by plain graph search over kept edges."""
    n_h, group = lay.n_heads, lay.n_heads // lay.n_kv

    def component(r):  # the writers a reader's component produces
        kind, layer, head = lay.reader_parts(lay.readers[r])
        base = 1 + layer * (n_h + 1)
        if kind == "q":
            return [base + head]
        if kind in ("k", "v"):
            return [base + h for h in range(head * group, (head + 1) * group)]
        return [base + n_h] if kind == "mlp" else []

    edges = [tuple(e) for e in keep.nonzero().tolist()]
    reached, todo = {0}, [0]
    while todo:
        w = todo.pop()
        for ew, r in edges:
            if ew == w:
                for nxt in component(r):
                    if nxt not in reached:
                        reached.add(nxt)
                        todo.append(nxt)
    logits = len(lay.readers) - 1
    good_r, changed = {logits}, True
    while changed:
        changed = False
        for r in range(len(lay.readers)):
            if r not in good_r and any((w, rr) in edges for w in component(r) for rr in good_r):
                good_r.add(r)
                changed = True
    out = torch.zeros_like(keep)
    for w, r in edges:
        out[w, r] = w in reached and r in good_r
    return out


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_prune_equals_a_plain_graph_search(family):
    lay = layout(lens.load_model(lens.tiny_config(family)))
    gen = torch.Generator().manual_seed(3)
    kept = dropped = 0
    for density in (0.02, 0.1, 0.3, 0.5):
        keep = (torch.rand(lay.mask().shape, generator=gen) < density) & lay.mask()
        got = prune(lay, keep)
        assert torch.equal(got, _prune_by_search(lay, keep))
        kept, dropped = kept + int(got.sum()), dropped + int((keep & ~got).sum())
    assert kept > 0 and dropped > 0  # neither trivial answer
