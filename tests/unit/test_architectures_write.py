"""Write-side primitives on six architectures (tests/architectures.py), each against the same
edit made by hand with forward hooks on a plain transformers model of the same folder:
neuron deactivation, direction ablation, orthogonalisation, linear shortcuts, head ablation.

One prompt, unpadded; tolerance 1e-4 absolute on logits (float32; observed below 2e-6). Each
test also checks that the edit changed the logits (so equality is not trivially true).
"""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import (
    DirectionAblation,
    HeadAblation,
    LinearShortcut,
    NeuronDeactivation,
    orthogonalize,
)
from tests.architectures import (
    edit_input,
    edit_output,
    first,
    hand_decode,
    hf_part,
    hooked,
    n_blocks,
)

TOKENS = torch.tensor([[1, 45, 67, 89, 120, 33, 250, 17]])
ATOL = 1e-4


def run(model, *interventions):
    with torch.no_grad(), lens.apply(model, *interventions):
        return model(TOKENS)


def hf_logits(hf, *handles):
    with hooked(*handles), torch.no_grad():
        return hf(TOKENS).logits


def assert_changed(a, b):
    assert (a - b).abs().max() > 1e-3, "the edit did not change the logits"


def test_neuron_deactivation(arch, arch_model, arch_hf):
    neurons = [3, 7, 20]

    def zero(x):
        x = x.clone()
        x[..., neurons] = 0
        return x

    ours = run(arch_model, NeuronDeactivation({1: neurons}))
    ref = hf_logits(arch_hf, edit_input(hf_part(arch_hf, arch, "mlp_down", 1), zero))
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)
    assert_changed(ours, run(arch_model))


def unit_direction(model):
    r = torch.randn(int(model.cfg.d_model), generator=torch.Generator().manual_seed(5))
    return r / r.norm()


def ablation_handles(hf, arch, r):
    """Remove ``r`` from every write to the residual stream: the embedding (block 0's input)
    and every attention and MLP output as it joins the stream."""

    def project(x):
        return x - (x @ r)[..., None] * r

    handles = [edit_input(hf_part(hf, arch, "blocks")[0], project)]
    for layer in range(n_blocks(hf, arch)):
        handles.append(edit_output(hf_part(hf, arch, "attn_write", layer), project))
        handles.append(edit_output(hf_part(hf, arch, "mlp_write", layer), project))
    return handles


def test_direction_ablation(arch, arch_model, arch_hf):
    r = unit_direction(arch_model)
    ours = run(arch_model, DirectionAblation(r))
    ref = hf_logits(arch_hf, *ablation_handles(arch_hf, arch, r))
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)
    assert_changed(ours, run(arch_model))


def test_orthogonalize_equals_ablation(arch, arch_folders):
    arch_model = lens.load_model(arch_folders[arch])  # its own copy: weights are edited
    r = unit_direction(arch_model)
    ablated = run(arch_model, DirectionAblation(r))
    if arch == "gemma2":  # a norm after each attention/MLP output re-mixes the edited weights
        with pytest.raises(ValueError, match="Gemma2ForCausalLM.*post"):
            orthogonalize(arch_model, r)
        return
    plain = run(arch_model)
    with orthogonalize(arch_model, r):
        edited = run(arch_model)
    torch.testing.assert_close(edited, ablated, atol=ATOL, rtol=0)
    assert_changed(edited, plain)
    torch.testing.assert_close(run(arch_model), plain, atol=0, rtol=0)  # restored exactly


def test_head_ablation(arch, arch_model, arch_hf):
    d_head = int(arch_model.cfg.d_head)
    head = 2

    def zero_head(x):
        x = x.clone()
        x[..., head * d_head : (head + 1) * d_head] = 0
        return x

    ours = run(arch_model, HeadAblation({0: [head]}))
    ref = hf_logits(arch_hf, edit_input(hf_part(arch_hf, arch, "attn_o", 0), zero_head))
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)
    assert_changed(ours, run(arch_model))


def random_affine(model, seed=7):
    d = int(model.cfg.d_model)
    gen = torch.Generator().manual_seed(seed)
    return torch.eye(d) + 0.3 * torch.randn(d, d, generator=gen), torch.randn(d, generator=gen)


def test_linear_shortcut(arch, arch_model, arch_hf):
    """Block 1's output replaced by ``W h0 + b`` (h0: block 0's output), and
    ``lens.shortcuts.predict`` of a 0 -> 0 map read out like the logit lens."""
    w, b = random_affine(arch_model)
    ours = run(arch_model, LinearShortcut(w, b, src_layer=0, dst_layer=1))
    blocks = hf_part(arch_hf, arch, "blocks")
    seen = {}
    handles = [
        blocks[0].register_forward_hook(lambda m, a, out: seen.__setitem__("h", first(out))),
        edit_output(blocks[1], lambda x: seen["h"] @ w.T + b),
    ]
    ref = hf_logits(arch_hf, *handles)
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)
    assert_changed(ours, run(arch_model))

    predicted = lens.shortcuts.predict(arch_model, LinearShortcut(w, b, 0, 0), TOKENS)
    hand = hand_decode(arch_hf, arch, seen["h"] @ w.T + b)
    torch.testing.assert_close(predicted, hand, atol=ATOL, rtol=0)
