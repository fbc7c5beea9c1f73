"""Ground truth for circuit discovery: the trained lookup model does its task by the written-down
circuit (re-derived by patching here), the circuit is faithful, and EAP-IG / exact recover it
(edge AUROC), as they recover the hand-set induction model's."""

from __future__ import annotations

import pytest
import torch

import lens
from interventions.edge_graph import layout
from lens.circuits import Circuit, faithfulness
from lens.circuits.graph import Graph
from lens.circuits.planted import INDUCTION_EDGES, edge_auroc, induction_model, induction_pairs
from lens.circuits.trained import (
    LOOKUP_EDGES,
    LOOKUP_TAU,
    N_KEYS,
    N_VALUES,
    SHAPE,
    lookup_accuracy,
    lookup_model,
    lookup_pairs,
    train_lookup,
)
from lens.circuits.truth import auroc_table, edge_drops, find_circuit


@pytest.fixture(scope="module")
def lookup():
    torch.set_num_threads(1)
    return lookup_model(), lookup_pairs(64)


def _hand_accuracy(model, n: int, seed: int) -> float:
    """Random lookup prompts built here, answered by reading the token after the query."""
    gen = torch.Generator().manual_seed(seed)
    prompts, answers = [], []
    for _ in range(n):
        keys = torch.randperm(N_KEYS, generator=gen)[:4].tolist()
        values = (torch.randperm(N_VALUES, generator=gen)[:4] + N_KEYS).tolist()
        row = [t for kv in zip(keys, values) for t in kv]
        q = keys[int(torch.randint(0, 4, (1,), generator=gen))]
        prompts.append(row + [q])
        answers.append(row[row.index(q) + 1])
    with torch.no_grad():
        pred = model(torch.tensor(prompts))[:, -1].argmax(-1)
    return float((pred == torch.tensor(answers)).float().mean())


def test_the_shipped_model_does_the_lookup(lookup):
    model, (clean, corrupt, answer, wrong) = lookup
    assert _hand_accuracy(model, 500, seed=7) >= 0.99
    untrained = lens.load_model(lens.tiny_config("gpt2", seed=0, **SHAPE))
    assert _hand_accuracy(untrained, 500, seed=7) < 0.5  # the check can fail
    with torch.no_grad():  # the corrupt prompt moves the answer to the other pair's value
        assert bool((model(torch.tensor(clean))[:, -1].argmax(-1) == torch.tensor(answer)).all())
        assert bool((model(torch.tensor(corrupt))[:, -1].argmax(-1) == torch.tensor(wrong)).all())
    for c, x in zip(clean, corrupt):
        assert len(c) == len(x) and c[1::2] == x[1::2] and c[-1] == x[-1] and c != x


def test_the_heads_do_what_the_circuit_says(lookup):
    """Attention patterns, read directly: a0.h1 looks one back from each value; the lookup
    heads a1.h0/h2/h3 look from the query at the queried key's value."""
    model, (clean, _, _, _) = lookup
    probes = [lens.Probe(f"blocks.{i}.attn.hook_pattern") for i in range(2)]
    with torch.no_grad(), lens.apply(model, probes=probes):
        model(torch.tensor(clean))
    p0, p1 = probes[0].value, probes[1].value
    prev = p0[:, :, [1, 3, 5, 7], [0, 2, 4, 6]].mean((0, 2))
    assert float(prev[1]) > 0.9 and float(prev[[0, 2]].max()) < 0.5
    target = torch.tensor([row.index(row[-1]) + 1 for row in clean])
    on_answer = p1[torch.arange(len(clean)), :, -1, target].mean(0)
    assert float(on_answer[[0, 2, 3]].min()) > 0.8 and float(on_answer[1]) < 0.5


def test_the_written_circuit_is_what_patching_finds(lookup):
    model, (clean, corrupt, answer, wrong) = lookup
    found, f = find_circuit(model, clean, corrupt, answer=answer, wrong=wrong, tau=LOOKUP_TAU)
    assert set(found.edges) == set(LOOKUP_EDGES)
    assert f >= 0.95
    lay = layout(model)
    mask = torch.zeros_like(lay.mask())
    for w, r in LOOKUP_EDGES:
        mask[lay.writer_index(w), lay.reader_index(r)] = True
    # the same number through lens's own faithfulness (batched, its own metric)
    ours = faithfulness(model, Circuit(lay, mask), clean, corrupt, answer=answer, wrong=wrong)
    assert ours == pytest.approx(f, abs=1e-5)
    empty = faithfulness(model, Circuit(lay, torch.zeros_like(mask)), clean, corrupt,
                         answer=answer, wrong=wrong)  # fmt: skip
    assert abs(empty) < 1e-6


def test_every_edge_of_the_circuit_is_needed(lookup):
    model, (clean, corrupt, answer, wrong) = lookup
    full, drops = edge_drops(model, LOOKUP_EDGES, clean, corrupt, answer=answer, wrong=wrong)
    assert full >= 0.95
    assert min(drops.values()) >= 0.005
    assert drops[("input", "a0.h1<v>")] > 0.9  # the previous-token head's input: everything


def test_find_circuit_recovers_the_planted_induction_circuit():
    """The truth finder, on a model whose circuit is known by construction."""
    clean, corrupt, answer, wrong = induction_pairs(16)
    found, f = find_circuit(induction_model(), clean, corrupt, answer=answer, wrong=wrong)
    assert set(found.edges) == set(INDUCTION_EDGES)
    assert f >= 0.95


@pytest.mark.parametrize("which", ["lookup", "induction"])
def test_edge_auroc_of_eap_ig_and_exact(lookup, which):
    if which == "lookup":
        model, (clean, corrupt, answer, wrong) = lookup
        truth = LOOKUP_EDGES
    else:
        model, (clean, corrupt, answer, wrong) = induction_model(), induction_pairs(16)
        truth = INDUCTION_EDGES
    table = auroc_table(model, truth, clean, corrupt, answer=answer, wrong=wrong)
    assert table["eap-ig"] >= 0.95 and table["exact"] >= 0.95
    assert table["eap"] >= 0.9  # reported, not a target


def test_random_scores_give_auroc_one_half(lookup):
    model, _ = lookup
    lay = layout(model)
    gen = torch.Generator().manual_seed(0)
    aurocs = torch.tensor(
        [
            edge_auroc(Graph(lay, torch.randn(lay.mask().shape, generator=gen)), LOOKUP_EDGES)
            for _ in range(200)
        ]
    )
    assert abs(float(aurocs.mean()) - 0.5) < 0.03
    assert float(aurocs.max()) < 0.95  # a threshold that random scores do not pass


@pytest.mark.slow
def test_retraining_reproduces_the_task():
    torch.set_num_threads(1)
    model, record = train_lookup()
    assert record["accuracy"] >= 0.99 and record["final_loss"] < 0.01
    assert _hand_accuracy(model, 500, seed=7) >= 0.99
    assert lookup_accuracy(model) == record["accuracy"]
