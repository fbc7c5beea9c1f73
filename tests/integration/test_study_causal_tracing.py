"""The causal_tracing study on the organism (quick config): runs, saves, and its numbers are
the primitive's; on stories260k, causal_trace equals ROME's loop written with transformers."""

from __future__ import annotations

import json

import torch

import lens
from benchmarks.causal_tracing import KINDS, rome_loop, workload
from lens.patching import causal_trace
from lens.studies import causal_tracing as ct
from tests.conftest import stories_path


def test_quick_study_on_the_organism(tmp_path):
    model = lens.load_model("organism")
    res = ct.run(model, ct.quick_config())
    out = res.save(tmp_path / "ct")
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["data"]["languages"]) == {"en", "ka"}
    assert len(res.findings) == 2 and (out / "trace_en.png").is_file()
    assert saved["data"]["noise_from"] == "subjects"
    report = (out / "report.md").read_text()
    assert "ROME's recipe" in report and "clipped" in report
    en = saved["data"]["languages"]["en"]
    assert en["n_prompts"] == 2 and en["clean_prob"] > en["corrupt_prob"]
    # the study's table is the primitive's, on the same prompts and settings
    facts = ct.facts_by_language(model, ct.quick_config())["en"]
    known = ct.known_facts(model, facts, 2)
    again = causal_trace(
        model, [p for p, _, _ in known], [s for _, s, _ in known], answer=[a for _, _, a in known],
        window=saved["data"]["window"], samples=2, noise_from=[s for _, s, _ in facts],
        progress=False,
    )  # fmt: skip
    assert abs(again.sigma - en["sigma"]) < 1e-12 and f"{en['sigma']:.4g}" in report
    got = again.by_role("mlp").tolist()
    for row_a, row_b in zip(got, en["by_role"]["mlp"]):
        for a, b in zip(row_a, row_b):
            assert (a != a and b is None) or abs(a - b) < 1e-9


def test_romes_sigma_from_subject_strings_on_stories260k():
    from transformers import AutoModelForCausalLM

    folder = stories_path()
    model = lens.load_model(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    subjects = ["Lily", "the little dog", "a big tree"]
    ids = [i for s in subjects for i in model.tokenizer(s, add_special_tokens=False)["input_ids"]]
    manual = 3.0 * float(hf.model.embed_tokens.weight[ids].detach().std())
    res = causal_trace(
        model, ["Lily saw the little dog near a big tree and"], ["little dog"], kinds=["resid"],
        samples=1, noise_from=subjects, progress=False,
    )  # fmt: skip
    assert abs(res.sigma - manual) < 1e-6 and res.noise_tokens == len(ids) > 3


def test_causal_trace_equals_romes_loop_in_plain_transformers_on_stories260k():
    """Every cell of every kind (the skipped ones too) against ROME's one-forward-per-cell
    loop with HF forward hooks (windows clipped, the same seeded draws)."""
    from transformers import AutoModelForCausalLM

    folder = stories_path()
    model = lens.load_model(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    work = workload(512, 2, 7)
    ours = causal_trace(
        model, work["prompts"], work["subjects"], kinds=KINDS, window=2,
        noise_from=work["noise_from"], samples=2, progress=False,
    )  # fmt: skip
    ref = rome_loop(hf, work, samples=2, window=2)
    assert abs(ours.sigma - ref["sigma"]) < 1e-6
    for kind in KINDS:
        torch.testing.assert_close(ours.restored[kind], ref["restored"][kind], atol=1e-5, rtol=0)
        assert ours.skipped[kind].any() and (~ours.skipped[kind]).any()
        assert ours.indirect_effect(kind).abs().max() > 1e-3  # not the trivial all-zero trace
    noised = torch.tensor(ref["corrupt"]).double()
    torch.testing.assert_close(ours.corrupt_prob, noised, atol=1e-5, rtol=0)
