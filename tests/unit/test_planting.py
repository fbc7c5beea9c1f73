"""Planted neurons and directions behave exactly as promised, on random bridges of both
families (RMSNorm + gated SiLU, LayerNorm + GELU) and on the organism when it is shipped."""

from __future__ import annotations

import pytest
import torch

import lens
from lens.organism.planting import plant_direction, plant_neurons

TRIGGER = [10, 11, 12]


def _tokens(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(20, 200, (4, 12), generator=g)
    t[0, 3], t[1, 0], t[2, 11], t[3, 5] = 10, 11, 12, 10
    return t


def _probe(model, tokens, names):
    store = {}

    def grab(n):
        def fn(act, hook):
            store[n] = act.detach().clone()

        return fn

    class Grab:
        def hooks(self, _model):
            return [(n, grab(n)) for n in names]

    with lens.apply(model, interventions=[Grab()]):
        logits = model(tokens)
    return store, logits


def test_planted_neurons_fire_exactly_on_the_token_set(native_model):
    p = plant_neurons(native_model, 1, [5, 17], TRIGGER)
    tokens = _tokens()
    store, _ = _probe(native_model, tokens, ["blocks.1.mlp.hook_post"])
    acts = store["blocks.1.mlp.hook_post"][..., [5, 17]]
    on = torch.isin(tokens, torch.tensor(TRIGGER))
    assert on.sum() == 4
    assert (acts[on] > 0.1).all()
    assert acts[~on].abs().max() < 1e-5
    # every other neuron of the layer is untouched in its input weights: it fires elsewhere too
    others = store["blocks.1.mlp.hook_post"][..., 0]
    assert (others[~on].abs() > 1e-4).any()
    assert p.dims[0] != p.dims[1]


def test_two_plantings_use_disjoint_dims_and_both_hold(native_model):
    a = plant_neurons(native_model, 0, [1], [10])
    b = plant_neurons(native_model, 2, [2], [11, 12])
    assert not set(a.dims) & set(b.dims)
    tokens = _tokens(1)
    store, _ = _probe(native_model, tokens, ["blocks.0.mlp.hook_post", "blocks.2.mlp.hook_post"])
    for name, n, ids in (
        ("blocks.0.mlp.hook_post", 1, [10]),
        ("blocks.2.mlp.hook_post", 2, [11, 12]),
    ):
        on = torch.isin(tokens, torch.tensor(ids))
        act = store[name][..., n]
        assert (act[on] > 0.1).all() and act[~on].abs().max() < 1e-5


def test_planted_direction_is_written_only_at_trigger_tokens_and_drives_target(native_model):
    torch.manual_seed(0)
    layer, target = 1, 7
    p = plant_direction(native_model, layer, torch.randn(native_model.cfg.d_model), TRIGGER, target)
    u = p.direction
    assert abs(float(u.norm()) - 1) < 1e-5
    tokens = _tokens(2)
    names = [f"blocks.{i}.hook_resid_post" for i in range(native_model.cfg.n_layers)]
    store, logits = _probe(native_model, tokens, names)
    on = torch.isin(tokens, torch.tensor(TRIGGER))
    for layer_i, name in enumerate(names):
        comp = store[name] @ u
        assert comp[~on].abs().max() < 1e-4, layer_i
        if layer_i >= layer:
            assert (comp[on] > 1.0).all(), layer_i
        else:
            assert comp[on].abs().max() < 1e-4, layer_i
    assert (logits.argmax(-1)[on] == target).all()
    assert (logits.argmax(-1)[~on] != target).all()

    class Ablate:  # independent check: removing u from the last residual kills the effect
        def hooks(self, _model):
            name = names[-1]
            return [(name, lambda act, hook: act - (act @ u)[..., None] * u)]

    with lens.apply(native_model, interventions=[Ablate()]):
        ablated = native_model(tokens)
    assert (ablated.argmax(-1)[on] != target).all()


def test_bad_input_raises_and_leaves_model_untouched(native_model):
    before = {k: v.clone() for k, v in native_model.state_dict().items()}
    with pytest.raises(ValueError, match="layer"):
        plant_neurons(native_model, 99, [0], [1])
    with pytest.raises(ValueError, match="neurons"):
        plant_neurons(native_model, 0, [10_000], [1])
    with pytest.raises(ValueError, match="token_ids"):
        plant_neurons(native_model, 0, [0], [])
    with pytest.raises(ValueError, match="d_model"):
        plant_direction(native_model, 0, torch.ones(3), [1], 2)
    after = native_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
