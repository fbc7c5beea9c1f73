"""Read-side primitives on six architectures (tests/architectures.py), each against a plain
transformers forward of the same folder: probes, logit lens, tuned-lens decode, collect, DLA.

Prompts are token ids of different lengths (batched with left padding by lens, run one by one
and unpadded through transformers), longer than the sliding window of Mistral and Gemma-2.
Tolerance: 1e-4 absolute on logits and residuals (float32; observed differences are below
2e-6), 1e-5 on probabilities.
"""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import bridge
from lens.attribution import direct_logit_attribution
from lens.tuned_lens.translators import TunedLens
from tests.architectures import (
    block_outputs,
    hand_decode,
    hf_part,
    load_reference,
    save_architecture,
)
from tests.conftest import byte_bpe_tokenizer

ROWS = [[1, 45, 67, 89, 120, 33, 250, 17], [1, 300, 12, 99, 7]]
ATOL = 1e-4


def hf_runs(hf, arch):
    """Per prompt: (block outputs, logits) of one unpadded transformers forward."""
    return [block_outputs(hf, arch, torch.tensor([r])) for r in ROWS]


def test_forward_and_probes_equal_transformers(arch, arch_model, arch_hf):
    n = int(arch_model.cfg.n_layers)
    b = lens.tokens.batch(arch_model, ROWS, padding_side="left")
    probes = [lens.Probe(f"blocks.{layer}.hook_resid_post") for layer in range(n)]
    with torch.no_grad(), lens.apply(arch_model, probes=probes):
        logits = arch_model(b.tokens, attention_mask=b.attention_mask)
    for i, (outs, ref_logits) in enumerate(hf_runs(arch_hf, arch)):
        k = len(ROWS[i])
        torch.testing.assert_close(logits[i, -k:], ref_logits[0], atol=ATOL, rtol=0)
        for layer in range(n):
            torch.testing.assert_close(
                probes[layer].value[i, -k:], outs[layer][0], atol=ATOL, rtol=0
            )
    # not trivial: the two layers' residuals differ, and the logits are not flat
    assert (probes[0].value - probes[1].value).abs().max() > 0.1
    assert logits[0, -1].std() > 0.05


def full_probs(res, vocab):
    """``[layer, batch, vocab]`` probabilities from a top-k=vocab logit-lens result."""
    ids = torch.as_tensor(res.top_ids)[:, :, 0]
    probs = torch.as_tensor(res.top_probs)[:, :, 0].double()
    out = torch.zeros(*ids.shape[:2], vocab, dtype=torch.float64)
    return out.scatter_(-1, ids.long(), probs)


def test_logit_lens_equals_hand_decode_of_transformers_states(arch, arch_model, arch_hf):
    vocab, n = int(arch_model.cfg.d_vocab), int(arch_model.cfg.n_layers)
    res = lens.logit_lens(arch_model, ROWS, positions="last", top_k=vocab)
    probs = full_probs(res, vocab)
    assert probs.shape == (n, len(ROWS), vocab)
    for i, (outs, logits) in enumerate(hf_runs(arch_hf, arch)):
        final = torch.softmax(logits[0, -1].double(), -1)
        torch.testing.assert_close(probs[n - 1, i], final, atol=1e-5, rtol=0)
        hand = torch.softmax(hand_decode(arch_hf, arch, outs[0][0, -1]).double(), -1)
        torch.testing.assert_close(probs[0, i], hand, atol=1e-5, rtol=0)
        assert (probs[0, i] - final).abs().max() > 1e-3  # layer 0 is not the output


def test_tuned_lens_decode(arch, arch_model, arch_hf):
    """Identity translators give the logit lens; a random affine at layer 0 gives the hand
    decode of ``W h + b`` of the transformers state."""
    vocab = int(arch_model.cfg.d_vocab)
    plain = full_probs(lens.logit_lens(arch_model, ROWS, top_k=vocab), vocab)
    tl = TunedLens.identity(arch_model)
    same = full_probs(lens.logit_lens(arch_model, ROWS, top_k=vocab, translator=tl), vocab)
    torch.testing.assert_close(same, plain, atol=1e-6, rtol=0)
    d = int(arch_model.cfg.d_model)
    gen = torch.Generator().manual_seed(3)
    w = torch.eye(d) + 0.3 * torch.randn(d, d, generator=gen)
    bias = torch.randn(d, generator=gen)
    tl.maps[0].weight, tl.maps[0].bias = w, bias
    moved = full_probs(lens.logit_lens(arch_model, ROWS, top_k=vocab, translator=tl), vocab)
    for i, (outs, _) in enumerate(hf_runs(arch_hf, arch)):
        h = outs[0][0, -1]
        hand = torch.softmax(hand_decode(arch_hf, arch, w @ h + bias).double(), -1)
        torch.testing.assert_close(moved[0, i], hand, atol=1e-5, rtol=0)
    assert (moved[0] - plain[0]).abs().max() > 1e-3
    torch.testing.assert_close(moved[1:], plain[1:], atol=1e-6, rtol=0)


def test_collect_means_equal_transformers_states(arch, arch_model, arch_hf):
    n = int(arch_model.cfg.n_layers)
    acc = lens.stats.MomentStats.for_model(arch_model, ["x"], layers="all", site="resid_post")
    lens.collect(
        arch_model, [(r, "x") for r in ROWS], accumulators=[acc], batch_size=2, progress=False
    )
    states = [
        torch.cat([outs[layer][0] for outs, _ in hf_runs(arch_hf, arch)]) for layer in range(n)
    ]
    ref = torch.stack([s.double().mean(0) for s in states])
    assert int(acc.count[0, 0]) == sum(len(r) for r in ROWS)  # padding excluded
    torch.testing.assert_close(acc.mean()[0], ref, atol=ATOL, rtol=0)
    assert ref.abs().max() > 0.05


def hf_logit_diff(hf, arch, answer, wrong, pre_cap=False):
    diffs = []
    for outs, logits in hf_runs(hf, arch):
        if pre_cap:
            logits = hf_part(hf, arch, "unembed")(hf_part(hf, arch, "final_norm")(outs[-1]))
        diffs.append(logits[0, -1, answer] - logits[0, -1, wrong])
    return torch.stack(diffs).detach()


def test_dla_parts_sum_to_the_transformers_logit_difference(arch, arch_model, arch_hf):
    capped = bridge.logit_soft_cap(arch_model) is not None
    if capped:  # Gemma-2: soft-capped logits are refused; their pre-cap logits are split
        with pytest.raises(ValueError, match="soft-caps its logits.*pre_cap"):
            direct_logit_attribution(arch_model, ROWS, answer=10, wrong=11)
    dla = direct_logit_attribution(
        arch_model, ROWS, answer=10, wrong=11, logits="pre_cap" if capped else "final"
    )
    ref = hf_logit_diff(arch_hf, arch, 10, 11, pre_cap=capped)
    torch.testing.assert_close(dla.total, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(dla.parts_sum(), ref, atol=ATOL, rtol=0)
    assert ref.abs().min() > 0.05  # a real difference, not 0 == 0
    assert dla.heads.abs().sum() > 0.01 and dla.mlp.abs().sum() > 0.01


def test_dla_on_gemma2_without_soft_cap(tmp_path):
    """The issue's case: offset RMSNorm, no cap; parts sum to the real logit difference
    (before the fix the parts summed to -0.20 where the real value was 0.95)."""
    folder = save_architecture(
        "gemma2", tmp_path / "g", byte_bpe_tokenizer(), final_logit_softcapping=None
    )
    model, hf = lens.load_model(folder), load_reference(folder)
    dla = direct_logit_attribution(model, ROWS, answer=10, wrong=11)
    ref = hf_logit_diff(hf, "gemma2", 10, 11)
    torch.testing.assert_close(dla.parts_sum(), ref, atol=ATOL, rtol=0)
    assert ref.abs().min() > 0.05


def test_final_norm_parameters_equal_the_module(arch, arch_model, arch_hf):
    """bridge.final_norm (kind, offset weight, bias, eps) reproduces the HF final norm."""
    params = bridge.final_norm(arch_model)
    h = torch.randn(3, int(arch_model.cfg.d_model), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = hf_part(arch_hf, arch, "final_norm")(h + 0.5)
    torch.testing.assert_close(params.apply(h + 0.5), ref, atol=1e-5, rtol=0)
    expected = {"gpt2": "LN", "neox": "LN"}.get(arch, "RMS")
    assert params.kind == expected
    assert (params.bias is not None) == (expected == "LN")


class _OffsetRMS(torch.nn.Module):
    """An RMSNorm with Gemma's ``1 + w`` on a model whose config declares no offset."""

    def __init__(self, d):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(d, generator=torch.Generator().manual_seed(1)))
        self.eps = 1e-6

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * (1 + self.weight)


class _NotANorm(_OffsetRMS):
    def forward(self, x):
        return torch.tanh(super().forward(x))


def test_norm_params_follow_the_module_not_the_config(arch_folders):
    model = lens.load_model(arch_folders["llama"])
    assert not getattr(model.cfg, "rmsnorm_uses_offset", False)
    module = _OffsetRMS(int(model.cfg.d_model))
    params = bridge.norm_params(model, module, "custom")
    assert params.kind == "RMS"
    torch.testing.assert_close(params.weight, module.weight + 1)
    with pytest.raises(ValueError, match=r"custom \(_NotANorm\).*neither LayerNorm nor RMSNorm"):
        bridge.norm_params(model, _NotANorm(int(model.cfg.d_model)), "custom")
