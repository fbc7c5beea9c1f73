"""Circuit analysis on the real SmolLM2-135M-Instruct (slow tier): patching equals
transformer_lens.patching on a few layers, DLA sums, causal tracing finds known facts."""

from __future__ import annotations

import pytest
import torch
import transformer_lens.patching as tlp

import lens
from lens.attribution import direct_logit_attribution
from lens.patching import activation_patching
from lens.studies import causal_tracing as ct

pytestmark = pytest.mark.slow


def test_resid_pre_patching_equals_transformer_lens(smol):
    clean = lens.tokens.batch(smol, ["The capital of France is"]).tokens
    corrupt = lens.tokens.batch(smol, ["The capital of Japan is"]).tokens
    paris, tokyo = (smol.tokenizer([t], add_special_tokens=False)["input_ids"][0][0]
                    for t in (" Paris", " Tokyo"))  # fmt: skip
    ours = activation_patching(
        smol, clean, corrupt, answer=paris, wrong=tokyo, sites=["resid_pre"], progress=False
    )
    with torch.no_grad():
        clean_logits, cache = smol.run_with_cache(clean)
        base = smol(corrupt)[0, -1, paris] - smol(corrupt)[0, -1, tokyo]
    top = clean_logits[0, -1, paris] - clean_logits[0, -1, tokyo]

    def metric(logits):
        return (logits[0, -1, paris] - logits[0, -1, tokyo] - base) / (top - base)

    ref = tlp.get_act_patch_resid_pre(smol, corrupt, cache, metric)
    torch.testing.assert_close(ours.values("resid_pre").float(), ref, atol=1e-4, rtol=0)
    assert ref.abs().max() > 0.5
    dla = direct_logit_attribution(smol, clean, answer=paris, wrong=tokyo)
    torch.testing.assert_close(dla.parts_sum(), dla.total, atol=1e-3, rtol=0)


def test_causal_tracing_on_english_facts(smol):
    res = ct.run(smol, ct.Config(prompts_per_language=3, samples=2))
    en = res.data.languages["en"]
    assert en["n_prompts"] == 3
    assert en["clean_prob"] > en["corrupt_prob"]


def test_circuit_discovery_on_ioi_pairs(smol, tmp_path):
    from lens.studies import circuit_discovery as cd

    cfg = cd.Config(task="ioi", n_pairs=4, steps=2, n_sizes=6, batch_size=4)
    res = cd.run(smol, cfg)
    d = res.data
    assert d.n_pairs == 4 and d.n_kv == 3 and d.n_heads == 9
    for e in d.methods.values():
        c = e["curve"]
        assert c["clean_metric"] > c["empty_metric"]
        assert c["faithfulness"][-1] == pytest.approx(1.0, abs=1e-3)
    assert res.data.methods["eap-ig"]["roles"]["logit_heads"]
    res.save(tmp_path / "ioi")
