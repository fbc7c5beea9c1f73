"""Fuzzing lens.apply with NeuronDeactivation, DirectionAblation and ActivationAddition built
from generated arguments, then a forward (and lens.collect) on the tiny random Llama."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

import lens
from interventions import ActivationAddition, DirectionAblation, NeuronDeactivation
from tests.fuzz.property import assert_finite, check
from tests.fuzz.strategies import (
    extreme_floats,
    fuzz,
    layer_arg,
    mostly,
    position_arg,
    token_prompt,
    vectors,
)

VOCAB, D_MODEL, D_MLP, LAYERS = 257, 64, 128, 3

layer = mostly(st.integers(0, LAYERS - 1), st.one_of(st.integers(-5, 9)))
layer_key = mostly(st.integers(0, LAYERS - 1), st.one_of(st.integers(-5, 9), st.text(max_size=2)))
neuron_ids = mostly(
    st.lists(st.integers(0, D_MLP - 1), min_size=1, max_size=5),
    st.one_of(st.lists(st.integers(-3, D_MLP + 3), max_size=5)),
)
positions = mostly(st.sampled_from(["all", "last", [0], [-1], [0, 1]]), position_arg(8))


@st.composite
def neuron_deactivation(draw):
    neurons = draw(
        mostly(
            st.dictionaries(layer_key, neuron_ids, min_size=1, max_size=2),
            st.sampled_from([{}, [], [(0, 1)], [(0, 1, 2)], {0: []}, "0:1"]),
        )
    )
    value = draw(mostly(st.just("zero"), st.one_of(extreme_floats, st.text(max_size=4))))
    pos = draw(positions)
    return lambda: NeuronDeactivation(neurons, value=value, positions=pos)


@st.composite
def direction_ablation(draw):
    direction = draw(vectors(D_MODEL))
    layers = draw(mostly(st.just("all"), layer_arg(LAYERS)))
    pos = draw(positions)
    return lambda: DirectionAblation(direction, layers=layers, positions=pos)


@st.composite
def activation_addition(draw):
    # |coeff * vector| stays below float32's 3.4e38: beyond it the addition overflowed to NaN
    # logits (now refused at construction; tested in test_fuzz_regressions.py)
    vector = draw(vectors(D_MODEL, big=1e20))
    coeff = draw(
        mostly(
            st.floats(-8, 8),
            st.sampled_from([0.0, -0.0, 1e-30, float("nan"), float("inf"), -float("inf")]),
        )
    )
    site = draw(mostly(st.just("hook_resid_pre"), st.sampled_from(["hook_resid_post", "x", ""])))
    at, pos = draw(layer), draw(positions)
    return lambda: ActivationAddition(vector, at, coeff=coeff, positions=pos, site=site)


any_intervention = st.one_of(neuron_deactivation(), direction_ablation(), activation_addition())


@fuzz(400)
@given(
    builders=st.lists(any_intervention, min_size=1, max_size=2),
    prompts=st.lists(token_prompt(VOCAB, 8), min_size=1, max_size=3),
)
def test_apply_interventions_then_forward(tiny, builders, prompts):
    def run():
        made = [build() for build in builders]  # construction errors count as clear errors
        b = lens.tokens.batch(tiny, prompts)
        with lens.apply(tiny, *made), torch.no_grad():
            return tiny(b.tokens, attention_mask=b.attention_mask)

    check("apply + forward", tiny, run, assert_finite)


@fuzz(150)
@given(
    builders=st.lists(any_intervention, max_size=2),
    corpus=st.lists(st.tuples(token_prompt(VOCAB, 8), st.sampled_from(["a", "b"])), max_size=4),
    batch_size=mostly(st.integers(1, 4), st.one_of(st.integers(-2, 0))),
    positions=mostly(st.sampled_from(["all", "last"]), position_arg(8)),
)
def test_collect_under_interventions(tiny, builders, corpus, batch_size, positions):
    def run():
        made = [build() for build in builders]
        acc = lens.stats.ActivationProbability.for_model(tiny, ["a", "b"])
        res = lens.collect(
            tiny,
            corpus,
            accumulators=[acc],
            batch_size=batch_size,
            positions=positions,
            interventions=made,
            progress=False,
        )
        return res, acc.count, acc.state_dict() if hasattr(acc, "state_dict") else None

    check("collect", tiny, run, assert_finite)
