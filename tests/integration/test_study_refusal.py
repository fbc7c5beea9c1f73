"""The refusal study end to end on the shipped organism (quick config), with its numbers
checked against independent computations:

* one off-diagonal transfer-matrix entry recomputed with ``lens.apply`` + ``DirectionAblation``
  + ``lens.generate.generate`` (text replies, prefix match on the decoded refusal phrase) from
  the directions saved in results.json; refusal counts are discrete and both paths are
  deterministic, so the rates must be equal;
* the cosine matrix against ``torch.nn.functional.cosine_similarity`` on the saved directions
  (tolerance 1e-9, float64);
* the saved Result loads back with equal data and findings.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import lens
from interventions import DirectionAblation
from lens import organism
from lens.organism.prompts import requests
from lens.studies import StudyResult, refusal
from tests.integration.conftest import FOLDER, require_organism

require_organism()


@pytest.fixture(scope="module")
def world():
    return organism.world(FOLDER)


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory) -> tuple[refusal.Result, Path]:
    result = refusal.run(model, refusal.quick_config())
    out = result.save(tmp_path_factory.mktemp("refusal"))
    return result, out


def test_files_and_round_trip(saved):
    result, out = saved
    for name in (
        "results.json",
        "report.md",
        "selection_scores.png",
        "refusal_rates.png",
        "transfer.png",
        "cosine.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    loaded = StudyResult.load(out)
    assert isinstance(loaded, refusal.Result)
    assert loaded.data == result.data
    assert loaded.config == result.config
    assert loaded.findings == result.findings
    assert loaded.headline() == result.headline()
    report = (out / "report.md").read_text()
    assert all(f.claim in report for f in result.findings)
    assert refusal.Config.from_dict(loaded.config) == refusal.quick_config()


def test_transfer_entry_recomputed(saved, model, world):
    _, out = saved
    data = StudyResult.load(out).data
    langs = data["languages"]
    src = data["pivot"]
    tgt = next(g for g in langs if g != src)
    direction = torch.tensor(data["directions"][src], dtype=torch.float64)
    n = refusal.quick_config().n_heldout
    prompts = [r.prompt for r in requests(world, tgt, "heldout") if r.harmful][:n]
    phrase = world.refusal_phrases[tgt]
    width = max(
        len(model.tokenizer(world.refusal_phrases[g], add_special_tokens=False)["input_ids"])
        for g in langs
    )
    with lens.apply(model, interventions=[DirectionAblation(direction)]):
        replies = lens.generate.generate(model, prompts, max_new_tokens=width, stop_at_eos=False)
    rate = sum(r.strip().startswith(phrase) for r in replies) / len(replies)
    assert data["transfer"][langs.index(src)][langs.index(tgt)] == rate
    # and the unablated baseline of the same prompts
    plain = lens.generate.generate(model, prompts, max_new_tokens=width, stop_at_eos=False)
    base = sum(r.strip().startswith(phrase) for r in plain) / len(plain)
    assert data["refusal"][tgt]["harmful_before"] == base


def test_cosine_matrix(saved):
    _, out = saved
    data = StudyResult.load(out).data
    vecs = torch.tensor([data["directions"][g] for g in data["languages"]], dtype=torch.float64)
    expected = F.cosine_similarity(vecs[:, None, :], vecs[None, :, :], dim=-1)
    torch.testing.assert_close(
        torch.tensor(data["cosine"], dtype=torch.float64), expected, rtol=0, atol=1e-9
    )
