"""Finders recover planted ground truth (see planting_helpers.py), and their pieces match
independent computations."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

import lens
from lens.finders import (
    NoDirectionFound,
    activation_probabilities,
    average_precision,
    average_precision_neurons,
    cosine,
    default_k,
    diff_in_means,
    lape,
    quantile_value,
    refusal_scores,
    select_direction,
)
from lens.stats import ActivationProbability
from tests.unit.planting_helpers import plant, random_prompts

N_LANG, PER_LANG = 4, 3
LANG_SETS = [list(range(10 + 60 * k, 70 + 60 * k)) for k in range(N_LANG)]


def pick_neurons(n: int, n_sets: int, seed: int, layers: int = 3, width: int = 128) -> dict:
    perm = torch.randperm(layers * width, generator=torch.Generator().manual_seed(seed))[:n]
    return {(int(i) // width, int(i) % width): j % n_sets for j, i in enumerate(perm)}


def language_model(family: str):
    model = lens.load_model(lens.tiny_config(family))
    neurons = pick_neurons(N_LANG * PER_LANG, N_LANG, seed=1)
    plant(model, LANG_SETS, neurons, alpha=3.0, beta=1.0)
    return model, neurons


def test_planting_holds(family):
    """The planted neurons' gate (llama) / pre-activation (gpt2) is > 0 exactly on their own
    language's tokens, read straight from hook_pre with probes."""
    model, neurons = language_model(family)
    prompts = [random_prompts(s, 4, 12, seed=k) for k, s in enumerate(LANG_SETS)]
    for k, batch in enumerate(prompts):
        probes = [lens.Probe(f"blocks.{layer}.mlp.hook_pre") for layer in range(3)]
        with torch.no_grad(), lens.apply(model, probes=probes):
            model(torch.tensor(batch))
        for (layer, j), owner in neurons.items():
            pre = probes[layer].value[..., j]
            assert bool((pre > 0).all()) if owner == k else bool((pre < 0).all())


def test_lape_recovers_planted_language_neurons(family):
    model, neurons = language_model(family)
    langs = [f"L{k}" for k in range(N_LANG)]
    data = [(p, langs[k]) for k, s in enumerate(LANG_SETS) for p in random_prompts(s, 16, 16, k)]
    stats = activation_probabilities(model, data, langs, batch_size=16, progress=False)
    n_total = 3 * 128
    res = lape(stats, top_rate=len(neurons) / n_total)
    truth = {(langs[k], layer, j) for (layer, j), k in neurons.items()}
    found = {(g, layer, j) for g, pairs in res.neurons.items() for layer, j in pairs}
    hits = len(truth & found)
    assert hits / max(len(found), 1) >= 0.95 and hits / len(truth) >= 0.95
    assert res.exclusive == res.neurons  # each planted neuron belongs to one language
    per_layer = torch.zeros(N_LANG, 3, dtype=torch.long)
    for (layer, _), k in neurons.items():
        per_layer[k, layer] += 1
    assert torch.equal(res.per_layer, per_layer)


def test_lape_selection_rules_on_known_probabilities():
    """Hand-built probabilities: neuron 0 is 'a'-only, neuron 1 active for a and b (shared),
    neuron 2 is 'b'-only but rare (filtered out), the rest are flat."""
    acc = ActivationProbability(["s"], 8, ["a", "b", "c"])
    acc.count[:] = 100
    flat = [40] * 5
    acc.active[:, 0] = torch.tensor([[90, 90, 0, *flat], [0, 90, 3, *flat], [0, 0, 0, *flat]])
    p = acc.probability()[:, 0]
    assert quantile_value(p, 0.75) == 0.4  # 18th smallest of 24 values
    res = lape(acc, top_rate=0.25, filter_rate=0.75, activation_bar_ratio=0.75)
    assert res.selected[0].nonzero().flatten().tolist() == [0, 1]  # lowest entropy, p > 0.4
    assert res.neurons == {"a": [(0, 0), (0, 1)], "b": [(0, 1)], "c": []}
    assert res.exclusive == {"a": [(0, 0)], "b": [], "c": []}
    assert res.entropy[0, 0] == 0.0
    assert abs(float(res.entropy[0, 1]) - math.log(2.0)) < 1e-12


def relation_model(family: str):
    model = lens.load_model(lens.tiny_config(family))
    markers = [[200 + r] for r in range(4)]
    neurons = pick_neurons(8, 4, seed=2)
    plant(model, markers, neurons, alpha=3.0, beta=1.0, replace=True)
    prompts, relations = [], []
    gen = torch.Generator().manual_seed(5)
    for r, marker in enumerate(markers):
        for p in random_prompts(range(10, 190), 20, 12, seed=10 + r):
            at = int(torch.randint(len(p) + 1, (1,), generator=gen))
            prompts.append(p[:at] + marker + p[at:])
            relations.append(f"R{r}")
    return model, neurons, prompts, relations


def test_average_precision_recovers_planted_relation_neurons(family):
    model, neurons, prompts, relations = relation_model(family)
    k = len(neurons) // 4
    res = average_precision_neurons(model, prompts, relations, k=k, batch_size=16, progress=False)
    truth = {(f"R{r}", layer, j) for (layer, j), r in neurons.items()}
    found = {(g, layer, j) for g, pairs in res.top.items() for layer, j in pairs}
    assert len(found) == len(truth)
    assert len(truth & found) / len(found) >= 0.95
    assert res.n_positive["R0"] == 20 and res.n_negative["R0"] == 60  # fewer than 4:1 available


def brute_force_ap(scores: list[float], labels: list[bool]) -> float:
    """Independent AP: python sort on (-score, label) puts negatives first among ties."""
    ranked = sorted(zip(scores, labels), key=lambda t: (-t[0], t[1]))
    hits, total = 0, 0.0
    for i, (_, lab) in enumerate(ranked, start=1):
        if lab:
            hits += 1
            total += hits / i
    return total / sum(labels)


def test_average_precision_matches_brute_force_with_ties():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (30, 6), generator=gen).double()  # many ties
    labels = torch.rand(30, generator=gen) < 0.3
    got = average_precision(scores, labels)
    for m in range(6):
        expect = brute_force_ap(scores[:, m].tolist(), labels.tolist())
        assert abs(float(got[m]) - expect) < 1e-12
    const = average_precision(torch.zeros(5, 1), torch.tensor([True, False, False, False, True]))
    assert abs(float(const[0]) - (1 / 4 + 2 / 5) / 2) < 1e-12  # positives ranked last


def test_default_k_scales_the_papers_3000():
    def cfg(layers, mlp):
        return SimpleNamespace(cfg=SimpleNamespace(n_layers=layers, d_mlp=mlp))

    assert default_k(cfg(32, 11008)) == 3000  # Llama-2 7B, as in the paper
    assert default_k(cfg(64, 11008)) == 6000
    assert default_k(cfg(1, 4)) == 1


TRIGGERS, NULL, REFUSE = [[240 + i] for i in range(4)], 250, 7


def refusal_model():
    """4 layers; layer-1 neurons fire on any of 4 trigger tokens and write r (extra[0]);
    the REFUSE token's logit reads r. Harmful = filler + trigger, harmless = filler + NULL."""
    model = lens.load_model(lens.tiny_config("llama", n_layers=4))
    neurons = {(1, 5 + 3 * i): i for i in range(4)}
    planted = plant(
        model,
        [*TRIGGERS, [NULL]],
        neurons,
        alpha=2.0,
        beta=1.0,
        replace=True,
        n_extra=1,
        writes={key: 0 for key in neurons},
        gamma=1.0,
        unembed={REFUSE: (0, 2.0)},
    )
    fill = random_prompts(range(10, 200), 48, 10, seed=3)
    harmful = [p + TRIGGERS[i % 4] for i, p in enumerate(fill)]
    harmless = [p + [NULL] for p in fill]
    return model, planted.extra[0], harmful, harmless


def test_diff_in_means_recovers_written_direction():
    model, r, harmful, harmless = refusal_model()
    d = diff_in_means(model, harmful[:32], harmless[:32], batch_size=8, progress=False)
    for layer in (2, 3):  # resid_pre after the layer-1 write
        assert cosine(d.direction(layer), r) >= 0.99
    for layer in (0, 1):  # before it, r is absent
        assert abs(cosine(d.direction(layer), r)) < 1e-3
    # independent means from probes at the last token
    probes = [lens.Probe(f"blocks.{layer}.hook_resid_pre", positions="last") for layer in range(4)]
    means = []
    for prompts in (harmful[:32], harmless[:32]):
        with torch.no_grad(), lens.apply(model, probes=probes):
            model(torch.tensor(prompts))
        means.append(torch.stack([p.value.double().mean(0) for p in probes]))
    assert torch.allclose(d.directions[:, 0], means[0] - means[1], atol=1e-4)


def test_refusal_score_matches_direct_probability():
    logits = torch.randn(3, 11, dtype=torch.float64)
    ref = torch.tensor([2, 5])
    p = torch.softmax(logits, -1)[:, ref].sum(-1)
    expect = torch.log(p / (1 - p))
    got = refusal_scores(torch.log_softmax(logits, -1), ref)
    assert torch.allclose(got, expect, atol=1e-12, rtol=0)


def test_select_direction_picks_planted_layer_and_direction():
    model, r, harmful, harmless = refusal_model()
    cands = diff_in_means(model, harmful[:32], harmless[:32], batch_size=8, progress=False)
    val = dict(harmful_val=harmful[32:], harmless_val=harmless[32:], refusal_tokens=[REFUSE])
    sel = select_direction(model, cands, **val, max_layer_frac=0.75, progress=False)
    assert sel.layer == 2 and cosine(sel.direction, r) >= 0.99
    assert sel.baseline_harmful > 0 > sel.baseline_harmless and sel.bypass < 0
    by_layer = {s.layer: s for s in sel.scores}
    assert by_layer[3].reason.startswith("layer")  # 3 >= 0.75 * 4
    assert by_layer[3].bypass != by_layer[3].bypass  # NaN: capped before any scoring forward
    assert by_layer[0].bypass > 0 and by_layer[1].bypass > 0  # ablating the trigger mean fails
    # bypass alone still prefers the planted layer when the induce filter is off
    loose = select_direction(
        model, cands, **val, max_layer_frac=0.75, induce_filter=False, progress=False
    )
    assert loose.layer == 2
    with_zero = {**cands.candidates(), (0, -2): torch.zeros(64)}
    sel0 = select_direction(model, with_zero, **val, max_layer_frac=0.75, progress=False)
    assert sel0.layer == 2 and sel0.scores[-1].reason == "zero or non-finite"
    with pytest.raises(NoDirectionFound, match="kl >"):
        select_direction(model, cands, **val, kl_threshold=-1.0, progress=False)
