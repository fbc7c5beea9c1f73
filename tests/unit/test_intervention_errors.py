"""Bad input for every constructor and at install: a clear error and no hook left behind."""

from __future__ import annotations

import math

import pytest
import torch

import lens
from interventions import (
    ActivationAddition,
    DirectionAblation,
    LinearShortcut,
    NeuronDeactivation,
    from_dict,
    orthogonalize,
)

V = torch.ones(64)

CONSTRUCTOR_ERRORS = [
    (lambda: NeuronDeactivation({}), "empty"),
    (lambda: NeuronDeactivation([]), "empty"),
    (lambda: NeuronDeactivation({1: []}), "empty"),
    (lambda: NeuronDeactivation({1: [0]}, value={-1: torch.zeros(1)}), "layers"),
    (lambda: NeuronDeactivation({1: [-3]}), ">= 0"),
    (lambda: NeuronDeactivation({1: [2, 2]}), "duplicate"),
    (lambda: NeuronDeactivation([(1, 2, 3)]), "pairs"),
    (lambda: NeuronDeactivation("abc"), "neurons must be"),
    (lambda: NeuronDeactivation({1: [0]}, value="mean"), "value must be"),
    (lambda: NeuronDeactivation({1: [0]}, value=math.nan), "finite"),
    (lambda: NeuronDeactivation({1: [0, 1]}, value={1: torch.zeros(3)}), "length 3"),
    (lambda: NeuronDeactivation({1: [0]}, value={2: torch.zeros(1)}), "layers"),
    (lambda: NeuronDeactivation({1: [0]}, value={1: torch.tensor([math.nan])}), "NaN"),
    (lambda: NeuronDeactivation({1: [0]}, positions="first"), "positions"),
    (lambda: NeuronDeactivation({1: [0]}, positions=[]), "empty"),
    (lambda: NeuronDeactivation({1: [0]}, site="hook_resid_pre"), "short names"),
    (lambda: DirectionAblation(torch.zeros(64)), "zero norm"),
    (lambda: DirectionAblation(torch.full((64,), math.nan)), "NaN"),
    (lambda: DirectionAblation(torch.ones(2, 64)), "1-D"),
    (lambda: DirectionAblation(torch.ones(0)), "empty"),
    (lambda: DirectionAblation({}), "empty"),
    (lambda: DirectionAblation({0: V, 1: torch.ones(32)}), "differ"),
    (lambda: DirectionAblation({0: V}, layers=[1]), "no direction"),
    (lambda: DirectionAblation(V, layers=[]), "empty"),
    (lambda: DirectionAblation(V, layers=[1, 1]), "duplicates"),
    (lambda: DirectionAblation(V, layers="some"), "layers"),
    (lambda: DirectionAblation(V, sites=()), "empty"),
    (lambda: DirectionAblation(V, sites=("resid_mid",)), "sites must be"),
    (lambda: DirectionAblation(V, positions="middle"), "positions"),
    (lambda: DirectionAblation("north"), "tensor"),
    (lambda: ActivationAddition(torch.ones(3, 3), 0), "1-D"),
    (lambda: ActivationAddition(torch.tensor([1.0, math.inf]), 0), "NaN or inf"),
    (lambda: ActivationAddition(V, 1.5), "integer"),
    (lambda: ActivationAddition(V, True), "integer layer, got True"),
    (lambda: DirectionAblation(V, layers=True), "integer layer, got True"),
    (lambda: DirectionAblation(V, layers=[0, False]), "integer layer, got False"),
    (lambda: DirectionAblation(V, positions=True), "positions must be"),
    (lambda: DirectionAblation(V, positions=[0, True]), "positions must be integers"),
    (lambda: NeuronDeactivation({1: [0]}, positions=False), "positions must be"),
    (lambda: ActivationAddition(V, 0, coeff=math.nan), "finite"),
    (lambda: ActivationAddition(V, 0, coeff="big"), "number"),
    (lambda: ActivationAddition(V, 0, site="mlp_post"), "site"),
    (lambda: LinearShortcut(torch.eye(64), torch.zeros(64), 2, 1), "dst_layer"),
    (lambda: LinearShortcut(torch.ones(64, 32), torch.zeros(64), 0, 1), "square"),
    (lambda: LinearShortcut(torch.eye(64), torch.zeros(32), 0, 1), "bias"),
    (lambda: LinearShortcut(torch.eye(64) * math.nan, torch.zeros(64), 0, 1), "NaN"),
    (lambda: LinearShortcut(torch.eye(64), torch.zeros(64), 0, 1, beta=math.inf), "finite"),
    (lambda: from_dict({"type": "Nope"}), "unknown intervention"),
]


@pytest.mark.parametrize("make,match", CONSTRUCTOR_ERRORS)
def test_constructor_errors(make, match):
    """Bad arguments fail when the intervention is built, before any model is involved."""
    with pytest.raises((ValueError, TypeError), match=match):
        make()


INSTALL_ERRORS = [
    (lambda: NeuronDeactivation({3: [0]}), "layers 0..2"),
    (lambda: NeuronDeactivation({-4: [0]}), "layers 0..2"),
    (lambda: NeuronDeactivation({-1: [0], 2: [1]}), "means layers \\[2, 2\\]"),
    (lambda: NeuronDeactivation({1: [5, 128]}), "neurons 0..127"),
    (lambda: DirectionAblation(torch.ones(32)), "d_model=64"),
    (lambda: DirectionAblation(V, layers=[0, 7]), "layers 0..2"),
    (lambda: DirectionAblation({5: V}), "layers 0..2"),
    (lambda: ActivationAddition(V, 3), "layers 0..2"),
    (lambda: ActivationAddition(V, -4), "layers 0..2"),
    (lambda: DirectionAblation(V, layers=[2, -1]), "duplicates"),
    (lambda: ActivationAddition(torch.ones(65), 0), "d_model=64"),
    (lambda: LinearShortcut(torch.eye(64), torch.zeros(64), 1, 4), "layers 0..2"),
    (lambda: LinearShortcut(torch.eye(32), torch.zeros(32), 0, 1), "d_model=64"),
]


@pytest.mark.parametrize("make,match", INSTALL_ERRORS)
def test_install_errors_leave_no_hook(native_model, make, match):
    model = native_model
    before = lens.count_hooks(model)
    good = DirectionAblation(V)  # valid, listed first: must not stay installed either
    with pytest.raises(ValueError, match=match):
        lens.apply(model, good, make())
    assert lens.count_hooks(model) == before
    tokens = torch.tensor([[1, 2, 3]])
    clean = model(tokens)
    with lens.apply(model, good):  # the model still works and is clean afterwards
        model(tokens)
    assert torch.equal(model(tokens), clean)


@pytest.mark.parametrize(
    "direction,match",
    [(torch.zeros(64), "zero norm"), (torch.ones(63), "d_model=64"), (V * math.nan, "NaN")],
)
def test_orthogonalize_bad_direction_changes_nothing(native_model, direction, match):
    before = {n: p.detach().clone() for n, p in native_model.named_parameters()}
    with pytest.raises(ValueError, match=match):
        orthogonalize(native_model, direction)
    after = dict(native_model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before)


FIT_ERRORS = [
    (dict(src_layer=0, method="svd"), "method"),
    (dict(src_layer=0, positions="first"), "positions"),
    (dict(src_layer=2, dst_layer=1), "dst_layer"),
    (dict(src_layer=0, dst_layer=3), "layers 0..2"),
    (dict(src_layer=-4), "layers 0..2"),
    (dict(src_layer=-1, dst_layer=1), "dst_layer"),
    (dict(src_layer=0, method="lstsq", ridge=-1.0), "ridge"),
]


@pytest.mark.parametrize("kwargs,match", FIT_ERRORS)
def test_fit_errors(native_model, kwargs, match):
    before = lens.count_hooks(native_model)
    with pytest.raises(ValueError, match=match):
        lens.shortcuts.fit(native_model, [[1, 2, 3]], progress=False, **kwargs)
    assert lens.count_hooks(native_model) == before


def test_fit_empty_prompts(native_model):
    with pytest.raises(ValueError, match="no prompts"):
        lens.shortcuts.fit(native_model, [], src_layer=0, progress=False)


def test_fit_failure_inside_forward_leaves_no_hook(native_model):
    model = native_model
    before = lens.count_hooks(model)
    for method in ("jacobian", "lstsq"):  # a token id beyond the vocabulary: the input gate
        with pytest.raises(lens.inputs.InputError, match="token id 10000"):
            lens.shortcuts.fit(model, [[1, 2, 10_000]], src_layer=0, method=method)

    class Boom:  # fails inside every forward, in block 0
        def hooks(self, model):
            def boom(act, hook):
                raise RuntimeError("boom")

            return [("blocks.0.hook_resid_pre", boom)]

    for method in ("jacobian", "lstsq"):
        with pytest.raises(RuntimeError, match="boom"), lens.apply(model, Boom()):
            lens.shortcuts.fit(model, [[1, 2, 3]], src_layer=0, method=method)
    assert lens.count_hooks(model) == before


def test_shortcut_fit_text_needs_a_tokenizer(native_model):
    assert getattr(native_model, "tokenizer", None) is None
    before = lens.count_hooks(native_model)
    with pytest.raises(ValueError, match="no tokenizer"):
        lens.shortcuts.fit(native_model, ["some text"], src_layer=0, progress=False)
    assert lens.count_hooks(native_model) == before


def test_negative_layers_count_from_the_end_in_neuron_and_head_ablations():
    """``{-1: ...}`` means the last layer, as everywhere else; compared with the same
    ablation written with the layer's number, and with the clean forward (it changes it)."""
    from interventions import HeadAblation

    model = lens.load_model(lens.tiny_config("llama"))
    tokens = torch.tensor([[1, 2, 3, 4]])
    last = int(model.cfg.n_layers) - 1
    clean = model(tokens)
    pairs = [
        (NeuronDeactivation({-1: [3, 5]}), NeuronDeactivation({last: [3, 5]})),
        (NeuronDeactivation([(-1, 7)]), NeuronDeactivation([(last, 7)])),
        (HeadAblation({-1: [1]}), HeadAblation({last: [1]})),
    ]
    for negative, explicit in pairs:
        with lens.apply(model, negative):
            a = model(tokens)
        with lens.apply(model, explicit):
            b = model(tokens)
        assert torch.equal(a, b) and not torch.allclose(a, clean)
        assert type(negative).from_dict(negative.to_dict()).to_dict() == negative.to_dict()
