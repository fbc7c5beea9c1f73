"""orthogonalize(): weights edited so that a plain forward equals DirectionAblation hooks."""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import DirectionAblation, orthogonalize


@pytest.fixture(params=["native", "hf"])
def model(request, family, hf_folders):
    if request.param == "native":
        return lens.load_model(lens.tiny_config(family))
    return lens.load_model(hf_folders[family])


def _inputs():
    tokens = torch.randint(3, 250, (2, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(tokens)
    mask[1, :3] = 0  # left padding: learned positions must follow the mask
    return tokens, mask


def _direction(model, seed=1):
    return torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(seed))


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _check_equivalence(model):
    tokens, mask = _inputs()
    r = _direction(model)
    clean = model(tokens, attention_mask=mask)
    with lens.apply(model, interventions=[DirectionAblation(r)]):
        ablated = model(tokens, attention_mask=mask)
    with orthogonalize(model, r):
        baked = model(tokens, attention_mask=mask)
    real = mask.bool()
    assert (baked - ablated)[real].abs().max() <= 1e-4
    assert (clean - ablated)[real].abs().max() > 1e-2  # the ablation matters


def test_matches_ablation_hooks(model):
    _check_equivalence(model)


def test_matches_ablation_on_stories(stories_model):
    before = _snapshot(stories_model)
    _check_equivalence(stories_model)  # tied embedding/unembedding
    assert _same(before, _snapshot(stories_model))


def test_context_manager_restores_bit_exactly(model):
    before = _snapshot(model)
    embed = model.embed.original_component.weight
    with orthogonalize(model, _direction(model)):
        assert not _same(before, _snapshot(model))
    assert _same(before, _snapshot(model))
    assert model.embed.original_component.weight is embed  # tied weights re-tied


def test_restores_on_exception(model):
    before = _snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        with orthogonalize(model, _direction(model)):
            raise RuntimeError("boom")
    assert _same(before, _snapshot(model))


def test_permanent_then_restore(model):
    tokens, mask = _inputs()
    r = _direction(model, seed=3)
    clean = model(tokens, attention_mask=mask)
    with lens.apply(model, interventions=[DirectionAblation(r)]):
        ablated = model(tokens, attention_mask=mask)
    record = orthogonalize(model, r)  # permanent until restored
    assert (model(tokens, attention_mask=mask) - ablated)[mask.bool()].abs().max() <= 1e-4
    record.restore()
    record.restore()  # idempotent
    assert torch.equal(model(tokens, attention_mask=mask), clean)


def test_writer_weights_have_no_component(model):
    r = _direction(model, seed=4)
    r_hat = r / r.norm()
    with orthogonalize(model, r):
        emb = model.embed.original_component.weight
        assert (emb @ r_hat).abs().max() <= 1e-5
        for block in model.blocks:
            for mod in (block.attn.o.original_component, block.mlp.out.original_component):
                w = mod.weight
                writes = r_hat @ w if isinstance(mod, torch.nn.Linear) else w @ r_hat
                assert writes.abs().max() <= 1e-5
                if mod.bias is not None:
                    assert abs(float(mod.bias.detach() @ r_hat)) <= 1e-5
