"""DirectionAblation and ActivationAddition against independent computations."""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import ActivationAddition, DirectionAblation, project_out
from interventions.sites import hook_name

SITES = ("resid_pre", "attn_out", "mlp_out")


@pytest.fixture(params=["native", "hf"])
def model(request, family, hf_folders):
    if request.param == "native":
        return lens.load_model(lens.tiny_config(family))
    return lens.load_model(hf_folders[family])


def _tokens(seed: int = 0, batch: int = 2, seq: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 250, (batch, seq), generator=g)


def _probes(model, sites=SITES):
    return [lens.Probe(hook_name(s, i)) for i in range(model.cfg.n_layers) for s in sites]


def test_project_out_removes_component():
    r = torch.tensor([1.0, 2.0, 2.0]) / 3.0
    x = torch.tensor([[3.0, 0.0, 1.0]])
    expected = x - (x @ r)[:, None] * r  # written out independently
    assert torch.allclose(project_out(x, r), expected, atol=1e-7)


def test_ablation_zeroes_component_at_every_site(model):
    r = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    r_hat = r / r.norm()
    probes = _probes(model, SITES + ("resid_post",))
    with lens.apply(model, interventions=[DirectionAblation(r)], probes=probes):
        model(_tokens())
    clean = _probes(model)
    with lens.apply(model, probes=clean):
        model(_tokens())
    for p in probes:
        assert (p.value @ r_hat).abs().max() <= 1e-5, p.name
    # the direction is present without the ablation (so the check above can fail)
    assert max(float((p.value @ r_hat).abs().max()) for p in clean) > 1e-2


def test_ablation_last_position_only_with_padding(model):
    r = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(2))
    r_hat = r / r.norm()
    tokens = _tokens(seq=6)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])  # right padding
    last = [5, 2]
    hooked = _probes(model)
    with lens.apply(model, interventions=[DirectionAblation(r, positions="last")], probes=hooked):
        model(tokens, attention_mask=mask)
    clean = _probes(model)
    with lens.apply(model, probes=clean):
        model(tokens, attention_mask=mask)
    for p, c in zip(hooked, clean):
        for row, pos in enumerate(last):
            assert abs(float(p.value[row, pos] @ r_hat)) <= 1e-5, p.name
            before = slice(0, pos)
            assert (p.value[row, before] - c.value[row, before]).abs().max() <= 1e-6, p.name
        assert float((c.value[:, last[0]] @ r_hat).abs().max()) > 0  # was non-zero


def test_per_layer_directions(native_model):
    model = native_model
    g = torch.Generator().manual_seed(3)
    r1 = torch.randn(model.cfg.d_model, generator=g)
    hooked, clean = _probes(model), _probes(model)
    with lens.apply(model, interventions=[DirectionAblation({1: r1})], probes=hooked):
        model(_tokens())
    with lens.apply(model, probes=clean):
        model(_tokens())
    for p, c in zip(hooked, clean):
        if p.name.startswith("blocks.0."):
            assert torch.equal(p.value, c.value)
        if p.name.startswith("blocks.1."):
            assert (p.value @ (r1 / r1.norm())).abs().max() <= 1e-5


@pytest.mark.parametrize("site", ["resid_pre", "resid_post", "mlp_out"])
def test_addition_adds_coeff_times_vector(model, site):
    v = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(4))
    coeff = -2.5
    name = hook_name(site, 1)
    clean, hooked = lens.Probe(name), lens.Probe(name)
    with lens.apply(model, probes=[clean]):
        model(_tokens())
    with lens.apply(
        model, interventions=[ActivationAddition(v, 1, coeff, site=site)], probes=[hooked]
    ):
        model(_tokens())
    expected = clean.value + coeff * v  # nothing upstream changed
    assert (hooked.value - expected).abs().max() <= 1e-6


def test_addition_at_positions(native_model):
    model = native_model
    v = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(5))
    name = "blocks.2.hook_resid_pre"
    clean, hooked = lens.Probe(name), lens.Probe(name)
    with lens.apply(model, probes=[clean]):
        model(_tokens())
    with lens.apply(
        model, interventions=[ActivationAddition(v, 2, 3.0, positions=[1, 4])], probes=[hooked]
    ):
        model(_tokens())
    diff = hooked.value - clean.value
    assert (diff[:, [1, 4]] - 3.0 * v).abs().max() <= 1e-5
    assert torch.equal(diff[:, [0, 2, 3, 5, 6]], torch.zeros_like(diff[:, [0, 2, 3, 5, 6]]))


def test_stories_ablation(stories_model):
    model = stories_model
    r = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(6))
    probes = _probes(model)
    with lens.apply(model, interventions=[DirectionAblation(r)], probes=probes):
        model(torch.tensor([[1, 400, 33, 87, 12]]))
    for p in probes:
        assert (p.value @ (r / r.norm())).abs().max() <= 1e-5
