"""NeuronDeactivation against an independent computation through the MLP output weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lens
from interventions import NeuronDeactivation


@pytest.fixture(params=["native", "hf"])
def model(request, family, hf_folders):
    if request.param == "native":
        return lens.load_model(lens.tiny_config(family))
    return lens.load_model(hf_folders[family])


def _tokens(seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 250, (2, 6), generator=torch.Generator().manual_seed(seed))


def _out_rows(model, layer: int, idx: list[int]) -> torch.Tensor:
    """[len(idx), d_model]: what each neuron writes per unit activation."""
    out = model.blocks[layer].mlp.out.original_component
    w = out.weight.detach()
    return w[:, idx].T if isinstance(out, nn.Linear) else w[idx]  # Conv1D stores [in, out]


def _run(model, interventions, names, tokens, mask=None):
    probes = [lens.Probe(n) for n in names]
    with lens.apply(model, interventions=interventions, probes=probes):
        model(tokens, attention_mask=mask)
    return [p.value for p in probes]


def _check_zero(model, layer, idx):
    names = [f"blocks.{layer}.mlp.hook_post", f"blocks.{layer}.hook_mlp_out"]
    post, mlp_out = _run(model, [], names, _tokens())
    _, hooked_out = _run(model, [NeuronDeactivation({layer: idx})], names, _tokens())
    expected = mlp_out - post[..., idx] @ _out_rows(model, layer, idx)
    assert (hooked_out - expected).abs().max() <= 1e-5
    assert (hooked_out - mlp_out).abs().max() > 1e-4  # the neurons did contribute


def test_zero_equals_clean_minus_contributions(model):
    _check_zero(model, 1, [0, 5, 17, 100])


def test_zero_on_stories(stories_model):
    _check_zero(stories_model, 2, [3, 40, 171])


def test_pairs_form_equals_dict_form(model):
    names = ["blocks.2.hook_resid_post"]
    a = _run(model, [NeuronDeactivation({0: [3, 9], 2: [1]})], names, _tokens())[0]
    b = _run(model, [NeuronDeactivation([(2, 1), (0, 3), (0, 9)])], names, _tokens())[0]
    assert torch.equal(a, b)


def test_constant_and_per_neuron_values(model):
    name = "blocks.1.mlp.hook_post"
    (clean,) = _run(model, [], [name], _tokens())
    (const,) = _run(model, [NeuronDeactivation({1: [2, 7]}, value=0.75)], [name], _tokens())
    assert torch.equal(const[..., [2, 7]], torch.full_like(const[..., [2, 7]], 0.75))
    others = [i for i in range(clean.shape[-1]) if i not in (2, 7)]
    assert torch.equal(const[..., others], clean[..., others])
    means = {1: torch.tensor([0.5, -1.25])}
    (per,) = _run(model, [NeuronDeactivation({1: [7, 2]}, value=means)], [name], _tokens())
    assert torch.equal(per[..., 7], torch.full_like(per[..., 7], 0.5))
    assert torch.equal(per[..., 2], torch.full_like(per[..., 2], -1.25))


def test_last_position_mask_aware(model):
    name = "blocks.1.mlp.hook_post"
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])  # left padding
    (clean,) = _run(model, [], [name], _tokens(), mask)
    nd = NeuronDeactivation({1: [4]}, positions="last")
    (hooked,) = _run(model, [nd], [name], _tokens(), mask)
    assert torch.equal(hooked[:, -1, 4], torch.zeros(2))
    assert torch.equal(hooked[:, :-1], clean[:, :-1])
    assert torch.equal(hooked[:, -1, 5:], clean[:, -1, 5:])


def test_explicit_positions(native_model):
    name = "blocks.0.mlp.hook_post"
    (clean,) = _run(native_model, [], [name], _tokens())
    (hooked,) = _run(
        native_model, [NeuronDeactivation({0: [1]}, positions=[0, 3])], [name], _tokens()
    )
    assert torch.equal(hooked[:, [0, 3], 1], torch.zeros(2, 2))
    assert torch.equal(hooked[:, [1, 2, 4, 5]], clean[:, [1, 2, 4, 5]])


def test_pre_activation_site_silences_neuron(model):
    # zero gate pre-activation (or GELU input): act_fn(0) = 0, so the post activation is 0
    name = "blocks.1.mlp.hook_post"
    nd = NeuronDeactivation({1: [0, 9]}, site="mlp_pre")
    (hooked,) = _run(model, [nd], [name], _tokens())
    assert hooked[..., [0, 9]].abs().max() <= 1e-7
