"""concept_space on the shipped organism (quick config): end to end, save/load round trip, and
the per-layer probabilities recomputed independently with transformers (hidden states ->
final RMSNorm -> lm_head), not through lens.

``LENS_TEST_ORGANISM=/path/to/trained/organism`` runs it on another trained organism folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lens
from lens import organism
from lens.studies import StudyResult, concept_space
from lens.studies.base import jsonable
from tests.integration.conftest import FOLDER, require_organism

require_organism()


@pytest.fixture(scope="module")
def result(model):
    config = concept_space.quick_config()
    config.organism_folder = FOLDER
    return concept_space.run(model, config)


@pytest.fixture(scope="module")
def hf_model():
    from transformers import AutoModelForCausalLM

    path = FOLDER or organism.shipped_path()
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


def test_save_load_round_trip(result, tmp_path):
    out = result.save(tmp_path / "cs")
    for name in (
        "results.json",
        "report.md",
        "translation_panels.png",
        "facts_panels.png",
        "summary.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    back = StudyResult.load(out)
    assert isinstance(back, concept_space.Result)
    assert jsonable(back.data) == json.loads(json.dumps(jsonable(result.data)))
    assert type(back.data) is type(result.data)
    assert back.findings == result.findings and back.config == result.config
    report = (out / "report.md").read_text()
    assert "## Findings" in report and "translation_panels.png" in report


def test_panels_cover_the_quick_pairs(result):
    names = [p["name"] for p in result.data.panels]
    assert names == ["ka->mu", "ka->lisp", "py->mu", "py->lisp", "facts ro", "facts py"]
    assert all(p["n"] > 0 for p in result.data.panels)


@torch.no_grad()
def _by_hand(hf_model, tok, prompt: str) -> np.ndarray:
    """[layer, vocab] logit-lens probabilities at the last position, via transformers."""
    ids = torch.tensor([[tok.bos_token_id, *tok(prompt, add_special_tokens=False)["input_ids"]]])
    out = hf_model(input_ids=ids, output_hidden_states=True)
    n = hf_model.config.num_hidden_layers
    rows = []
    for layer in range(n - 1):  # hidden_states[l + 1] is block l's output (before the norm)
        h = out.hidden_states[layer + 1][0, -1]
        rows.append(hf_model.lm_head(hf_model.model.norm(h)))
    rows.append(out.logits[0, -1])  # the last layer: the model's own logits
    return torch.softmax(torch.stack(rows).double(), -1).numpy()


@pytest.mark.parametrize("index", [0, 4])  # a translation panel and a fact panel
def test_probabilities_match_transformers(result, model, hf_model, index):
    panel = result.data.panels[index]
    tok = model.tokenizer
    world = organism.world(FOLDER)
    langs = organism.token_languages(world, tok)
    tgt_ids = [i for i, lang in enumerate(langs) if lang == panel["tgt"]]
    code_ids = [i for i, lang in enumerate(langs) if lang in (*world.notations, "code")]
    probs = np.stack([_by_hand(hf_model, tok, p) for p in panel["prompts"]])  # [item, L, V]
    items = np.arange(len(panel["prompts"]))
    target = probs[items, :, tok.convert_tokens_to_ids(panel["answers"])].mean(0)
    pivot = probs[items, :, tok.convert_tokens_to_ids(panel["pivot_words"])].mean(0)
    np.testing.assert_allclose(panel["mass"]["target answer"], target, atol=2e-5)
    np.testing.assert_allclose(panel["mass"]["pivot answer"], pivot, atol=2e-5)
    np.testing.assert_allclose(
        panel["mass"]["target language"], probs[:, :, tgt_ids].sum(-1).mean(0), atol=2e-5
    )
    np.testing.assert_allclose(
        panel["mass"]["code"], probs[:, :, code_ids].sum(-1).mean(0), atol=2e-5
    )


def test_findings_follow_the_saved_curves(result):
    """Each finding's verdict is the stated rule applied to the saved group curves."""
    min_mass = result.data.summary["min_mass"]
    groups = result.data.summary["groups"]
    assert len(result.findings) == len(groups)
    for finding, s in zip(result.findings, groups.values()):
        pivot, target = s["mass"]["pivot answer"], s["mass"]["target answer"]
        ahead = any(p > t and p >= min_mass for p, t in zip(pivot[:-1], target[:-1]))
        assert finding.reproduced == (ahead and target[-1] > pivot[-1])


def test_pivot_first_rule():
    check = concept_space.pivot_first([0.0, 0.3, 0.2, 0.05], [0.0, 0.1, 0.25, 0.9], 0.05)
    assert check["holds"] and check["layers_pivot_ahead"] == [1] and check["switch_layer"] == 2
    assert not concept_space.pivot_first([0.0, 0.04, 0.0], [0.0, 0.01, 0.9], 0.05)["holds"]
    assert not concept_space.pivot_first([0.0, 0.5, 0.6], [0.0, 0.1, 0.3], 0.05)["holds"]


def test_config_rejects_unknown_keys_and_languages(model):
    with pytest.raises(ValueError, match="valid keys"):
        concept_space.Config.from_dict({"sources": ["ka"], "bogus": 1})
    with pytest.raises(ValueError, match="unknown languages"):
        concept_space.run(model, concept_space.Config(sources=["xx"], organism_folder=FOLDER))


def test_organism_data_names_unknown_languages():
    tiny = lens.load_model(lens.tiny_config("llama"))
    with pytest.raises(ValueError, match="unknown source languages"):
        concept_space.run(tiny, concept_space.quick_config())  # ka, py: organism languages


def test_cli_config_file(tmp_path):
    path = Path(tmp_path) / "c.json"
    path.write_text(json.dumps({"sources": ["ka"], "targets": ["mu"], "max_items": 3}))
    config = concept_space.Config.from_json(path)
    assert config.sources == ["ka"] and config.max_items == 3


@pytest.mark.parametrize("kinds", [("concept",), ("concept", "person", "rel", "action", "thing")])
def test_organism_tasks_from_the_exported_dataset_match_the_world(kinds):
    """The organism's translation tasks, built from its exported translations dataset, equal
    ``lens.organism.translation_pairs`` read straight from the world (same items, same order)."""
    import random

    from lens.data.organism_export import organism_translations
    from lens.studies.concept_space.run import _translation_job, _words

    world = organism.world(FOLDER)
    words = _words(organism_translations(world), kinds)
    for src in world.scripts:
        for tgt in world.scripts:
            if src == tgt:
                continue
            pairs = organism.translation_pairs(world, src, tgt, kinds)
            job = _translation_job(words, world, src, tgt, None, random.Random(0))
            assert len(pairs) > 0
            assert job["prompts"] == [p.prompt for p in pairs]
            assert job["target answer"] == [p.answer for p in pairs]
            assert job["pivot answer"] == [p.pivot_word for p in pairs]
            assert job["source word"] == [p.source_word for p in pairs]
