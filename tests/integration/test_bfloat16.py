"""Every primitive on a bfloat16 model against the same model in float32 (CPU).

Reference: the float32 model loaded from the same folder. Tolerances (bfloat16 keeps 8
mantissa bits, ~0.4 % per rounding, compounded over the layers):

* TOL = 0.05 absolute on next-token probabilities (measured at most 0.017 on stories260k);
* REL = 0.05 on last-position logits, as max |difference| / max |float32 logit| (the random
  models' near-uniform probabilities make the first check weak there; measured at most 0.018).

Each intervention check also asserts that the intervention moves the float32 logits by more than
twice the bf16-vs-fp32 gap, so the agreement is not agreement with doing nothing.
"""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import DirectionAblation, NeuronDeactivation
from tests.conftest import STORY_TEXT, stories_path

TOL = 0.05
REL = 0.05
PROMPTS = [
    "Once upon a time, there was a little girl",
    "The cat sat on the mat and",
    "Tom had a big red ball. He",
]


@pytest.fixture(params=["stories260k", "random-llama", "random-gpt2"])
def pair(request, hf_folders):
    if request.param == "stories260k":
        folder = stories_path()  # skips with the LENS_STORIES260K hint when absent
    else:
        folder = hf_folders[request.param.split("-")[1]]
    m32 = lens.load_model(folder)
    m16 = lens.load_model(folder, dtype=torch.bfloat16)
    assert {p.dtype for p in m16.parameters()} == {torch.bfloat16}
    return m32, m16, lens.tokens.batch(m32, PROMPTS)


@torch.no_grad()
def last_logits(model, b, *interventions):
    with lens.apply(model, *interventions):
        logits = model(b.tokens, attention_mask=b.attention_mask)
    return logits.float()[torch.arange(len(b)), b.last_positions]


def last_probs(model, b, *interventions):
    return torch.softmax(last_logits(model, b, *interventions), -1)


def rel(x, reference):
    """max |x - reference| relative to the largest reference logit."""
    return float((x - reference).abs().max() / reference.abs().max())


def check_agreement(m32, m16, b, *interventions):
    """bf16 vs fp32 under the interventions, and the interventions' own effect in fp32."""
    l32, l16 = last_logits(m32, b, *interventions), last_logits(m16, b, *interventions)
    assert rel(l16, l32) < REL
    assert (torch.softmax(l16, -1) - torch.softmax(l32, -1)).abs().max() < TOL
    assert rel(l32, last_logits(m32, b)) > 2 * rel(l16, l32)


def test_plain_forward_agrees(pair):
    m32, m16, b = pair
    l32, l16 = last_logits(m32, b), last_logits(m16, b)
    assert rel(l16, l32) < REL
    assert (torch.softmax(l16, -1) - torch.softmax(l32, -1)).abs().max() < TOL


def test_logit_lens_decodes_in_float32_and_agrees(pair):
    m32, m16, b = pair
    targets = last_probs(m32, b).argmax(-1).tolist()
    r32 = lens.logit_lens(m32, b, top_k=5, targets=targets)
    r16 = lens.logit_lens(m16, b, top_k=5, targets=targets)
    assert r16.top_probs.dtype == r16.target_probs.dtype == r16.entropy.dtype == "float32"
    assert abs(r32.target_probs - r16.target_probs).max() < TOL
    assert abs(r32.top_probs - r16.top_probs).max() < TOL
    # last layer through lens == the bf16 model's own next-token probabilities
    own = last_probs(m16, b)[torch.arange(len(b)), torch.tensor(targets)]
    assert abs(r16.target_probs[-1, :, 0] - own.numpy()).max() < TOL


def test_neuron_deactivation_agrees_and_zeroes_in_bfloat16(pair):
    m32, m16, b = pair
    spec = NeuronDeactivation({0: list(range(0, 48)), 2: list(range(16, 80))})
    check_agreement(m32, m16, b, spec)
    probe = lens.Probe("blocks.2.mlp.hook_post")
    with torch.no_grad(), lens.apply(m16, spec, probes=[probe]):
        m16(b.tokens, attention_mask=b.attention_mask)
    assert probe.value.dtype == torch.bfloat16
    assert torch.count_nonzero(probe.value[..., 16:80]) == 0


def test_direction_ablation_agrees_and_removes_the_direction(pair):
    m32, m16, b = pair
    torch.manual_seed(0)
    with torch.no_grad():  # a direction the residual stream really uses: its mean
        r = m32(b.tokens, attention_mask=b.attention_mask, stop_at_layer=2).mean((0, 1))
    spec = DirectionAblation(r)
    check_agreement(m32, m16, b, spec)
    last = m16.cfg.n_layers - 1
    unit_r = r / r.norm()
    for interventions in ((), (spec,)):
        probe = lens.Probe(f"blocks.{last}.hook_resid_post")
        with torch.no_grad(), lens.apply(m16, *interventions, probes=[probe]):
            m16(b.tokens, attention_mask=b.attention_mask)
        x = probe.value.float()
        share = ((x @ unit_r).abs() / x.norm(dim=-1)).max()
        assert (share < 0.02) if interventions else (share > 0.05)


def test_linear_shortcut_agrees_and_predicts_in_float32(pair):
    m32, m16, b = pair
    rows = [m32.tokenizer(t)["input_ids"] for t in STORY_TEXT]
    sc = lens.shortcuts.fit(m32, rows, src_layer=0, method="lstsq", positions="all", progress=False)
    with torch.no_grad():
        q32, q16 = lens.shortcuts.predict(m32, sc, b), lens.shortcuts.predict(m16, sc, b)
    assert q16.dtype == torch.float32
    pick = torch.arange(len(b)), b.last_positions
    assert rel(q16[pick], q32[pick]) < REL
    assert (torch.softmax(q16[pick], -1) - torch.softmax(q32[pick], -1)).abs().max() < TOL
    assert rel(q32[pick], last_logits(m32, b)) > 2 * rel(q16[pick], q32[pick])  # not the model
    # as an intervention on the bf16 model (weights cast into the activation's dtype)
    check_agreement(m32, m16, b, sc)
    # fitted on the bf16 model: same map within bf16 precision of the activations
    sc16 = lens.shortcuts.fit(
        m16, rows, src_layer=0, method="lstsq", positions="all", progress=False
    )
    w32, w16 = sc.weight.double(), sc16.weight.double()
    assert (w16 - w32).norm() / w32.norm() < 0.1
