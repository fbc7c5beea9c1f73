"""The planted induction model does induction, and EAP / EAP-IG recover its known circuit."""

from __future__ import annotations

import pytest
import torch

from lens.circuits import Circuit, attribute, faithfulness
from lens.circuits.graph import Graph, prune
from lens.circuits.planted import (
    INDUCTION_EDGES,
    edge_auroc,
    induction_model,
    induction_pairs,
)

POSITIONAL = [("input", "a0.h0<q>"), ("input", "a0.h0<k>"), ("input", "a1.h0<q>")]


@pytest.fixture(scope="module")
def planted():
    torch.set_num_threads(1)
    return induction_model(), induction_pairs(16)


def test_it_does_induction_only_on_repeats(planted):
    model, (clean, corrupt, answer, _) = planted
    with torch.no_grad():
        on_clean = model(torch.tensor(clean))[:, -1].argmax(-1)
        on_corrupt = model(torch.tensor(corrupt))[:, -1].argmax(-1)
    assert bool((on_clean == torch.tensor(answer)).all())
    assert not bool((on_corrupt == torch.tensor(answer)).any())


@pytest.mark.parametrize("method", ["eap", "eap-ig"])
def test_edge_auroc_and_the_true_circuit_is_faithful(planted, method):
    model, (clean, corrupt, answer, wrong) = planted
    g = attribute(model, clean, corrupt, answer=answer, wrong=wrong, method=method, steps=5)
    assert edge_auroc(g, INDUCTION_EDGES) >= 0.95
    lay = g.layout
    mask = torch.zeros_like(g.mask)
    for w, r in INDUCTION_EDGES + POSITIONAL:
        mask[lay.writer_index(w), lay.reader_index(r)] = True
    truth = Circuit(lay, prune(lay, mask))
    assert truth.n_edges == len(INDUCTION_EDGES + POSITIONAL)  # all on input -> logits paths
    f = faithfulness(model, truth, clean, corrupt, answer=answer, wrong=wrong)
    assert f >= 0.95
    assert faithfulness(model, g.top(0), clean, corrupt, answer=answer, wrong=wrong) < 0.05


def test_edge_auroc_by_hand(planted):
    model, _ = planted
    g = attribute(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, method="eap")
    lay = g.layout
    scores = torch.zeros_like(g.scores)
    truth = [("input", "logits"), ("a0.h0", "m0")]
    scores[lay.writer_index("input"), lay.reader_index("logits")] = -3.0  # |score| ranks
    scores[lay.writer_index("a0.h0"), lay.reader_index("m0")] = 2.0
    scores[lay.writer_index("m1"), lay.reader_index("logits")] = 2.0  # a tie with a true edge
    made = Graph(lay, scores)
    n_neg = made.n_edges - 2
    # true edge 1 beats every negative; true edge 2 beats all but one, which it ties
    assert edge_auroc(made, truth) == pytest.approx((n_neg + (n_neg - 1) + 0.5) / (2 * n_neg))
    with pytest.raises(ValueError, match="some, but not all"):
        edge_auroc(made, [])
