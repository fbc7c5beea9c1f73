"""attribution_patching: exact where the model is affine in every cell; no leaks, no side
effects on parameter gradients."""

from __future__ import annotations

import pytest
import torch

import lens
from lens.patching import activation_patching, attribution_patching

CLEAN = torch.tensor([[5, 9, 2, 7, 11, 4], [3, 3, 8, 1, 4, 9]])
CORRUPT = torch.tensor([[5, 9, 20, 7, 11, 4], [3, 30, 8, 1, 4, 9]])
KW = dict(answer=[17, 23], wrong=[40, 41])


class Freeze:
    """Makes every block affine. Attention patterns become constants of one reference run; each
    norm's output is recomputed from its input with the reference run's frozen scale; MLP
    outputs become constants (fresh leaves, so a gradient reaches them but not through them)."""

    def __init__(self, model, tokens):
        n = model.cfg.n_layers
        self.patterns = [f"blocks.{i}.attn.hook_pattern" for i in range(n)]
        self.norms = [f"blocks.{i}.{ln}" for i in range(n) for ln in ("ln1", "ln2")]
        self.norms += ["ln_final"]
        self.mlp = [f"blocks.{i}.hook_mlp_out" for i in range(n)]
        names = self.patterns + self.mlp + [f"{ln}.hook_scale" for ln in self.norms]
        probes = [lens.Probe(name) for name in names]
        with torch.no_grad(), lens.apply(model, probes=probes):
            model(tokens)
        self.values = {p.name: p.value for p in probes}
        self.centre = str(model.cfg.normalization_type).startswith("LN")

    def _const(self, name, act):
        value = self.values[name]
        return value.repeat(act.shape[0] // value.shape[0], *[1] * (value.ndim - 1))

    def _leaf(self, name, act):
        return self._const(name, act).clone().requires_grad_(torch.is_grad_enabled())

    def hooks(self, model):
        pairs = []
        for name in self.patterns:
            pairs.append((name, lambda act, hook, name=name: self._const(name, act).clone()))
        for name in self.mlp:
            pairs.append((name, lambda act, hook, name=name: self._leaf(name, act)))
        for ln in self.norms:
            module = model.get_submodule(ln)
            seen = {}

            def keep_input(act, hook, seen=seen):
                seen["x"] = act

            def affine_norm(act, hook, ln=ln, module=module, seen=seen):
                x = seen.pop("x")
                if self.centre:
                    x = x - x.mean(-1, keepdim=True)
                out = x / self._const(f"{ln}.hook_scale", act) * module.w
                return out + module.b if self.centre else out

            pairs += [(f"{ln}.hook_in", keep_input), (f"{ln}.hook_out", affine_norm)]
        return pairs


@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_exact_on_an_affine_model(native_model, direction):
    freeze = Freeze(native_model, CORRUPT)
    kw = dict(KW, direction=direction, interventions=[freeze])
    exact = activation_patching(native_model, CLEAN, CORRUPT, progress=False, **kw)
    approx = attribution_patching(native_model, CLEAN, CORRUPT, **kw)
    for site in ("resid_pre", "attn_out", "z"):
        torch.testing.assert_close(approx.raw[site], exact.raw[site], atol=1e-4, rtol=0)
        assert (exact.raw[site] - exact.corrupt_metric.view(-1, *[1] * 2 + [1] * (site == "z"))
                ).abs().max() > 1e-2  # fmt: skip


def test_differs_from_exact_on_the_real_model_but_correlates(native_model):
    exact = activation_patching(native_model, CLEAN, CORRUPT, progress=False, **KW)
    approx = attribution_patching(native_model, CLEAN, CORRUPT, **KW)
    a, b = exact.values("z").flatten(), approx.values("z").flatten()
    assert (a - b).abs().max() > 1e-3  # a nonlinear model: only an estimate
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.5


def test_no_hooks_left_and_no_parameter_gradients(native_model):
    before = lens.count_hooks(native_model)
    clean_logits = native_model(CLEAN)
    attribution_patching(native_model, CLEAN, CORRUPT, **KW)
    assert lens.count_hooks(native_model) == before
    assert all(p.grad is None for p in native_model.parameters())
    assert torch.equal(native_model(CLEAN), clean_logits)


def test_bad_metric_leaves_no_hook(native_model):
    before = lens.count_hooks(native_model)
    with pytest.raises(ValueError, match="one value per row"):
        attribution_patching(native_model, CLEAN, CORRUPT, metric=lambda lg, b: lg[:, -1])
    with pytest.raises(ValueError, match="differentiable"):
        attribution_patching(
            native_model, CLEAN, CORRUPT, metric=lambda lg, b: lg[:, -1, 0].detach()
        )
    assert lens.count_hooks(native_model) == before


def test_grad_probe_equals_autograd(native_model):
    probe = lens.GradProbe("blocks.1.hook_resid_pre", positions=[2, 4])
    act = lens.Probe("blocks.1.hook_resid_pre")
    with lens.apply(native_model, probes=[act, probe]):
        native_model(CLEAN)[:, -1, 7].sum().backward()
    native_model.zero_grad(set_to_none=True)

    def keep(x, hook):  # the reference: plain autograd on the same activation
        keep.t = x.detach().requires_grad_(True)
        return keep.t

    out = native_model.run_with_hooks(CLEAN, fwd_hooks=[("blocks.1.hook_resid_pre", keep)])
    (grad,) = torch.autograd.grad(out[:, -1, 7].sum(), keep.t)
    torch.testing.assert_close(probe.value, grad[:, [2, 4]], atol=1e-6, rtol=0)
    assert probe.value.abs().max() > 0


def test_grad_probe_removed_on_exception_and_refuses_no_grad(native_model):
    before = lens.count_hooks(native_model)

    def boom(act, hook):
        raise RuntimeError("inside a hook")

    class Boom:
        def hooks(self, model):
            return [("blocks.2.hook_resid_pre", boom)]

    probe = lens.GradProbe("blocks.1.hook_resid_pre")
    with pytest.raises(RuntimeError, match="inside a hook"):
        with lens.apply(native_model, interventions=[Boom()], probes=[probe]):
            native_model(CLEAN)
    assert lens.count_hooks(native_model) == before
    with pytest.raises(RuntimeError, match="does not require grad"):
        with torch.no_grad(), lens.apply(native_model, probes=[probe]):
            native_model(CLEAN)
    assert lens.count_hooks(native_model) == before
