"""On a model made affine, EAP and EAP-IG (any number of steps) equal exact edge patching,
edge by edge (every edge patched alone, all in one batched forward)."""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import EdgePatch, bridge
from interventions.edge_graph import layout
from lens.circuits import attribute, writer_outputs
from lens.tokens import as_batch

CLEAN = torch.tensor([[5, 9, 2, 7, 11, 4]])
CORRUPT = torch.tensor([[5, 9, 20, 7, 11, 4]])
EPS = 1e8


def _linear_norms(model):
    """Every norm becomes affine: a huge eps makes its scale a constant (relative deviation
    ~ mean(x^2) / eps ~ 1e-8); weights are scaled up by sqrt(eps) to keep magnitudes."""
    mods = [bridge.final_norm_module(model)]
    for layer in range(model.cfg.n_layers):
        mods += [bridge.block_norm(model, layer, "ln1"), bridge.block_norm(model, layer, "ln2")]
    for mod in mods:
        for attr in ("eps", "variance_epsilon"):
            if hasattr(mod, attr):
                setattr(mod, attr, EPS)
        with torch.no_grad():
            mod.weight.mul_(EPS**0.5)
    for mod in model.modules():  # the bridge's own norm forward reads its config's eps
        cfg = getattr(mod, "config", None)
        if cfg is not None and hasattr(cfg, "eps"):
            cfg.eps = EPS
    model.cfg.eps = EPS


class Freeze:
    """Attention patterns and MLP outputs become constants of the corrupted run."""

    def __init__(self, model):
        n = model.cfg.n_layers
        self.names = [f"blocks.{i}.attn.hook_pattern" for i in range(n)]
        self.names += [f"blocks.{i}.hook_mlp_out" for i in range(n)]
        probes = [lens.Probe(name) for name in self.names]
        with torch.no_grad(), lens.apply(model, probes=probes):
            model(CORRUPT)
        self.values = {p.name: p.value for p in probes}

    def hooks(self, model):
        def const(name):
            def fn(act, hook):
                v = self.values[name]
                return v.expand(act.shape[0], *v.shape[1:]).clone()

            return fn

        return [(name, const(name)) for name in self.names]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_eap_and_eap_ig_equal_exact_edge_patching_on_an_affine_model(family):
    torch.set_num_threads(1)
    model = lens.load_model(lens.tiny_config(family))
    _linear_norms(model)
    freeze = Freeze(model)
    lay = layout(model)
    kw = dict(answer=17, wrong=40, interventions=[freeze])
    eap = attribute(model, CLEAN, CORRUPT, method="eap", **kw)
    ig = attribute(model, CLEAN, CORRUPT, method="eap-ig", steps=3, **kw)
    ig_act = attribute(model, CLEAN, CORRUPT, method="eap-ig", steps=3, ig="activations", **kw)
    ours_exact = attribute(model, CLEAN, CORRUPT, method="exact", **kw)
    # exact: the corrupted run with one edge at a time patched to its clean value
    edges = lay.mask().nonzero()
    masks = torch.zeros(len(edges), *lay.mask().shape, dtype=torch.bool)
    masks[torch.arange(len(edges)), edges[:, 0], edges[:, 1]] = True
    values = writer_outputs(model, as_batch(model, CLEAN), interventions=[freeze])
    patch = EdgePatch(source="corrupt", values=values.repeat(len(edges), 1, 1, 1), mask=masks)
    with torch.no_grad(), lens.apply(model, freeze):
        base = model(CORRUPT)[0, -1]
    with torch.no_grad(), lens.apply(model, freeze, patch):
        out = model(CORRUPT.repeat(len(edges), 1))[:, -1]
    exact = (out[:, 17] - out[:, 40]) - (base[17] - base[40])
    got = eap.scores[edges[:, 0], edges[:, 1]]
    assert exact.abs().max() > 1e-3
    torch.testing.assert_close(got, exact, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(ig.scores[edges[:, 0], edges[:, 1]], exact, atol=1e-6, rtol=1e-4)
    act = ig_act.scores[edges[:, 0], edges[:, 1]]
    torch.testing.assert_close(act, exact, atol=1e-6, rtol=1e-4)
    # method="exact" patches the same edges (in its own batches) and must agree
    torch.testing.assert_close(
        ours_exact.scores[edges[:, 0], edges[:, 1]], exact, atol=1e-5, rtol=1e-4
    )
