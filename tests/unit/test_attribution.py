"""Direct logit attribution: parts sum to the real logit difference; a head's part equals a
manual computation from its hook_z and W_O."""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import bridge as hb
from lens.attribution import direct_logit_attribution

PROMPTS = [[5, 9, 2, 7, 11, 4], [3, 8, 1, 4]]  # left-padded together


def test_parts_sum_to_the_real_logit_difference(native_model):
    dla = direct_logit_attribution(native_model, PROMPTS, answer=[17, 23], wrong=[40, 41])
    real = []
    for prompt, a, w in zip(PROMPTS, [17, 23], [40, 41]):
        logits = native_model(torch.tensor([prompt]))[0, -1]
        real.append(float(logits[a] - logits[w]))
    torch.testing.assert_close(dla.total, torch.tensor(real), atol=1e-4, rtol=0)
    torch.testing.assert_close(dla.parts_sum(), dla.total, atol=1e-4, rtol=0)
    assert dla.heads.abs().max() > 1e-3 and dla.mlp.abs().max() > 1e-3


def test_head_part_equals_manual(native_model):
    prompt = torch.tensor([PROMPTS[0]])
    dla = direct_logit_attribution(native_model, prompt, answer=17)
    z = lens.Probe(hb.z_hook(1))
    x = lens.Probe("ln_final.hook_in")
    with torch.no_grad(), lens.apply(native_model, probes=[z, x]):
        native_model(prompt)
    resid = x.value[0, -1]
    centre = str(native_model.cfg.normalization_type).startswith("LN")
    if centre:
        scale = (resid - resid.mean()).pow(2).mean().add(native_model.cfg.eps).sqrt()
    else:
        scale = resid.pow(2).mean().add(native_model.cfg.eps).sqrt()
    w_u = native_model.W_U[:, 17] * native_model.ln_final.w
    for head in range(4):
        out = z.value[0, -1, head] @ native_model.blocks[1].attn.W_O[head]
        if centre:
            out = out - out.mean()
        manual = float(out @ w_u / scale)
        assert abs(float(dla.heads[0, 1, head]) - manual) < 1e-4


def test_bad_answer(native_model):
    before = lens.count_hooks(native_model)
    with pytest.raises(ValueError, match="out of range"):
        direct_logit_attribution(native_model, PROMPTS, answer=10_000)
    with pytest.raises(ValueError, match="2 prompt pairs|entries"):
        direct_logit_attribution(native_model, PROMPTS, answer=[1, 2, 3])
    assert lens.count_hooks(native_model) == before
