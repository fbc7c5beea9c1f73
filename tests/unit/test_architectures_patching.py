"""Activation and attribution patching on six architectures (tests/architectures.py), against
the same patch (or gradient) computed with hooks on a plain transformers model.

One clean / corrupted pair differing at one position. Exact patching: layer 0's input at the
changed position restores the clean run (1), every other position of layer 0 changes nothing
(0), and a later cell equals the hand patch. Attribution patching: its estimate equals
``(clean - corrupt) . grad`` computed by hand on transformers. Tolerance 1e-4 on normalised
values (float32).
"""

from __future__ import annotations

import torch

from lens.patching import activation_patching, attribution_patching
from tests.architectures import edit_input, edit_output, first, hf_part, hooked

CLEAN = [1, 45, 67, 89, 120, 33, 250, 17]
CORRUPT = [1, 45, 67, 300, 120, 33, 250, 17]
CHANGED = 3
ANSWER, WRONG = 10, 11
ATOL = 1e-4


def metric(logits):
    return logits[0, -1, ANSWER] - logits[0, -1, WRONG]


def hf_metric(hf, tokens, *handles):
    with hooked(*handles), torch.no_grad():
        return float(metric(hf(torch.tensor([tokens])).logits))


def capture(module, store, key):
    return module.register_forward_hook(lambda m, a, out: store.__setitem__(key, first(out)))


def capture_input(module, store, key):
    def pre(m, args, kwargs):
        store[key] = args[0] if args else kwargs["hidden_states"]

    return module.register_forward_pre_hook(pre, with_kwargs=True)


def replace_at(position, value):
    def fn(x):
        x = x.clone()
        x[:, position] = value[:, position]
        return x

    return fn


def test_activation_patching(arch, arch_model, arch_hf):
    res = activation_patching(
        arch_model,
        [CLEAN],
        [CORRUPT],
        answer=ANSWER,
        wrong=WRONG,
        sites=["resid_pre", "attn_out"],
        progress=False,
    )
    clean_m, corrupt_m = hf_metric(arch_hf, CLEAN), hf_metric(arch_hf, CORRUPT)
    assert abs(clean_m - corrupt_m) > 0.02  # a real gap to normalise by
    torch.testing.assert_close(
        res.clean_metric.double(), torch.tensor([clean_m]).double(), atol=ATOL, rtol=0
    )
    resid = res.values("resid_pre").double()
    expected0 = torch.zeros(len(CLEAN), dtype=torch.float64)
    expected0[CHANGED] = 1.0
    torch.testing.assert_close(resid[0], expected0, atol=ATOL, rtol=0)

    blocks = hf_part(arch_hf, arch, "blocks")
    clean_acts = {}
    attn = hf_part(arch_hf, arch, "attn_write", 1)
    with hooked(capture_input(blocks[1], clean_acts, "pre"), capture(attn, clean_acts, "attn")):
        hf_metric(arch_hf, CLEAN)
    last = len(CLEAN) - 1
    for position in (CHANGED, last):
        for site, install in (
            ("resid_pre", lambda p: edit_input(blocks[1], replace_at(p, clean_acts["pre"]))),
            ("attn_out", lambda p: edit_output(attn, replace_at(p, clean_acts["attn"]))),
        ):
            patched = hf_metric(arch_hf, CORRUPT, install(position))
            hand = (patched - corrupt_m) / (clean_m - corrupt_m)
            assert abs(float(res.values(site)[1, position]) - hand) < ATOL, (site, position)
    assert float(resid[1].abs().max()) > 1e-3  # layer 1 carries an effect
    if arch == "mistral":  # window 4: the last token's layer 1 cannot see position 3
        assert abs(float(resid[1, CHANGED])) < 1e-6


def test_attribution_patching_equals_hand_gradient(arch, arch_model, arch_hf):
    res = attribution_patching(
        arch_model, [CLEAN], [CORRUPT], answer=ANSWER, wrong=WRONG, sites=["resid_pre"]
    )
    blocks = hf_part(arch_hf, arch, "blocks")
    clean_acts = {}
    with hooked(*(capture_input(b, clean_acts, i) for i, b in enumerate(blocks))):
        clean_m = hf_metric(arch_hf, CLEAN)
    corrupt_acts: dict = {}

    def keep(i):
        def pre(m, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            corrupt_acts[i] = x
            x.retain_grad()

        return pre

    handles = [b.register_forward_pre_hook(keep(i), with_kwargs=True) for i, b in enumerate(blocks)]
    with hooked(*handles), torch.enable_grad():
        logits = arch_hf(torch.tensor([CORRUPT])).logits
        m = metric(logits)
        m.backward()
    arch_hf.zero_grad(set_to_none=True)
    gap = clean_m - float(m.detach())
    for layer in range(len(blocks)):
        grad = corrupt_acts[layer].grad[0]
        delta = clean_acts[layer][0] - corrupt_acts[layer][0].detach()
        hand = (delta * grad).sum(-1).double() / gap
        torch.testing.assert_close(res.values("resid_pre")[layer].double(), hand, atol=ATOL, rtol=0)
    values = res.values("resid_pre")
    assert abs(float(values[0, CHANGED])) > 1e-3
    assert float(values[0].abs().sum() - values[0, CHANGED].abs()) == 0.0  # no delta elsewhere
