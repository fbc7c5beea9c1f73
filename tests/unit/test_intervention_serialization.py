"""to_dict -> JSON text -> from_dict gives bit-identical outputs; composition order."""

from __future__ import annotations

import json

import pytest
import torch

import interventions
import lens
from interventions import (
    ActivationAddition,
    ActivationPatch,
    DirectionAblation,
    HeadAblation,
    LinearShortcut,
    NeuronDeactivation,
    from_dict,
)
from interventions.base import _REGISTRY


def _vec(seed: int, d: int = 64) -> torch.Tensor:
    return torch.randn(d, generator=torch.Generator().manual_seed(seed))


def _mat(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _cases():
    return {
        "neurons-zero": NeuronDeactivation({0: [1, 5], 2: [127]}),
        "neurons-float": NeuronDeactivation([(1, 3)], value=-0.3, positions="last"),
        "neurons-means": NeuronDeactivation(
            {1: [2, 9]}, value={1: torch.tensor([0.1, 1 / 3])}, positions=[0, 2]
        ),
        "ablation": DirectionAblation(_vec(1)),
        "ablation-per-layer": DirectionAblation(
            {0: _vec(2), 2: _vec(3)}, positions="last", sites=("resid_pre",)
        ),
        "ablation-tensor-positions": DirectionAblation(
            _vec(4), layers=[1], positions=torch.tensor([1, 3])
        ),
        "addition": ActivationAddition(_vec(5) / 7, 1, coeff=1 / 3, positions="last"),
        "addition-bf16": ActivationAddition(_vec(6).bfloat16(), 2, site="mlp_out"),
        "shortcut": LinearShortcut(
            torch.eye(64) + 0.01 * torch.randn(64, 64, generator=torch.Generator().manual_seed(7)),
            _vec(8) / 3,
            0,
            1,
            beta=0.7,
            meta={"note": "hand-made"},
        ),
        "heads-zero": HeadAblation({0: [1], 2: [0, 3]}, positions="last"),
        "heads-mean": HeadAblation(
            {1: [2]}, mode="mean", means={1: _mat(9, 4, 16)}, positions=[1, 4]
        ),
        "patch-resid": ActivationPatch("resid_pre", 1, _mat(10, 6, 64), positions=[2, 5]),
        "patch-heads": ActivationPatch("z", 2, _mat(11, 6, 4, 16), heads=[1, 3]),
        "edges-zero": interventions.EdgePatch([("input", "logits"), ("a0.h1", "a1.h0<q>")], "zero"),
        "edges-values": interventions.EdgePatch([("m0", "logits")], values=_mat(12, 2, 6, 16, 64)),
        "sae-splice": interventions.SpliceSAE(_sae(), error=False),
        "sae-ablation": interventions.FeatureAblation(_sae(), list(range(32)), positions="last"),
        "sae-steering": interventions.FeatureSteering(_sae(), {2: 3.0, 7: -1.5}, mode="clamp"),
    }


def _sae():
    """A hand-made TopK SAE on resid_post of block 1 (d_model 64, 32 latents)."""
    return interventions.SAE(
        W_enc=_mat(13, 64, 32), b_enc=_vec(14)[:32] / 10, W_dec=_mat(15, 32, 64),
        b_dec=_vec(16) / 10, site="resid_post", layer=1, activation="topk", k=4,
    )  # fmt: skip


@pytest.mark.parametrize("name", list(_cases()))
def test_json_roundtrip_bit_identical(native_model, name):
    original = _cases()[name]
    spec = original.to_dict()
    text = json.dumps(spec)
    rebuilt = from_dict(json.loads(text))
    assert type(rebuilt) is type(original)
    assert rebuilt.to_dict() == spec
    tokens = torch.randint(3, 250, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    clean = native_model(tokens, attention_mask=mask)
    outs = []
    for item in (original, rebuilt):
        with lens.apply(native_model, item):
            outs.append(native_model(tokens, attention_mask=mask))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], clean)  # the intervention does something


def test_roundtrip_preserves_dtype():
    a = _cases()["addition-bf16"]
    b = from_dict(json.loads(json.dumps(a.to_dict())))
    assert b.vector.dtype == torch.bfloat16 and torch.equal(a.vector, b.vector)


def test_all_exports_registered():
    """Every exported class with to_dict is in the from_dict registry under its own name,
    and the round-trip cases above cover each of them."""
    exported = [getattr(interventions, name) for name in interventions.__all__]
    serialisable = [  # interventions: they install hooks (SAE and Transcoder are data)
        c for c in exported if isinstance(c, type) and hasattr(c, "to_dict") and hasattr(c, "hooks")
    ]
    assert set(serialisable) >= {
        NeuronDeactivation,
        DirectionAblation,
        ActivationAddition,
        LinearShortcut,
        HeadAblation,
        ActivationPatch,
    }
    for cls in serialisable:
        assert _REGISTRY.get(cls.__name__) is cls, f"{cls.__name__} is not registered"
        assert cls.__name__ in {type(c).__name__ for c in _cases().values()}


def test_composition_order_on_shared_hook(native_model):
    """Interventions sharing a hook point run in the order given to lens.apply."""
    model = native_model
    r, v = _vec(11), _vec(12)
    r_hat = r / r.norm()
    name = "blocks.1.hook_resid_pre"
    add = ActivationAddition(v, 1, coeff=2.0)
    ablate = DirectionAblation(r, layers=[1], sites=("resid_pre",))
    tokens = torch.randint(3, 250, (2, 5), generator=torch.Generator().manual_seed(1))

    def run(*items):
        probe = lens.Probe(name)
        with lens.apply(model, *items, probes=[probe]):
            model(tokens)
        return probe.value

    x = run()

    def proj(t):
        return t - (t @ r_hat)[..., None] * r_hat

    add_then_ablate, ablate_then_add = run(add, ablate), run(ablate, add)
    assert (add_then_ablate - proj(x + 2.0 * v)).abs().max() <= 1e-5
    assert (ablate_then_add - (proj(x) + 2.0 * v)).abs().max() <= 1e-5
    assert (add_then_ablate - ablate_then_add).abs().max() > 1e-2
