"""fact_consistency on the shipped organism (quick config): end to end, save/load round trip,
CLC recomputed by hand from the saved per-fact correctness, recall checked against greedy
generation (lens.generate), and one shortcut layer re-evaluated through the intervention form
of the shortcut (hooks) instead of ``predict``.

``LENS_TEST_ORGANISM=/path/to/trained/organism`` runs it on another trained organism folder.
"""

from __future__ import annotations

import json

import pytest
import torch

import lens
from lens import organism
from lens.studies import StudyResult, fact_consistency
from lens.studies.base import jsonable
from tests.integration.conftest import FOLDER, require_organism

require_organism()


@pytest.fixture(scope="module")
def result(model):
    config = fact_consistency.quick_config()
    config.organism_folder = FOLDER
    return fact_consistency.run(model, config)


def _entries(data):
    """(name, entry, number of facts it was measured on) for every measured model."""
    n_all = len(data["facts"])
    yield "final", data["final"], n_all
    for p in data.get("training", {}).get("points", []):
        yield p["label"], p, n_all
    if "shortcut" in data:
        n_eval = len(data["shortcut"]["eval_facts"])
        yield "full", data["shortcut"]["full"], n_eval
        for e in data["shortcut"]["layers"]:
            yield f"shortcut {e['layer']}", e, n_eval


def test_save_load_round_trip(result, tmp_path):
    out = result.save(tmp_path / "fc")
    names = ["results.json", "report.md", "recall_clc.png", "shortcut.png"]
    if result.data["training"]["points"]:
        names.append("training.png")
    for name in names:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    back = StudyResult.load(out)
    assert isinstance(back, fact_consistency.Result)
    assert jsonable(back.data) == json.loads(json.dumps(jsonable(result.data)))
    assert type(back.data) is type(result.data)
    assert back.findings == result.findings and back.config == result.config


def test_clc_by_hand_from_saved_correct_sets(result, tmp_path):
    """CLC = |C_L ∩ C_pivot| / |C_L ∪ C_pivot| on the saved sets, after a JSON round trip."""
    data = StudyResult.load(result.save(tmp_path / "fc")).data
    pivot = data["pivot"]
    checked = 0
    for where, entry, n in _entries(data):
        piv = set(entry["correct"][pivot])
        for lang, value in entry["clc"].items():
            mine = set(entry["correct"][lang])
            union = mine | piv
            expected = None if not union else len(mine & piv) / len(union)
            assert value == pytest.approx(expected, abs=1e-12), (where, lang)
            checked += 1
        for lang, r in entry["recall"].items():
            assert r == pytest.approx(len(entry["correct"][lang]) / n, abs=1e-12), where
    assert checked >= 2 * 2  # at least the final model and one shortcut layer


def test_recall_matches_greedy_generation(result, model):
    """Scoring by the last-position argmax == the first token of lens.generate's greedy text."""
    world = organism.world(FOLDER)
    facts = set(result.data["facts"])
    for lang in ("ka", "py"):
        qs = [q for q in organism.fact_queries(world, lang) if q.fact_index in facts]
        first = lens.generate.greedy_tokens(model, [q.prompt for q in qs], max_new_tokens=1)
        gold = model.tokenizer.convert_tokens_to_ids([q.answer for q in qs])
        correct = sorted(q.fact_index for q, t, g in zip(qs, first[:, 0].tolist(), gold) if t == g)
        assert correct == result.data["final"]["correct"][lang]


def test_training_points_and_final(result):
    points = result.data["training"]["points"]
    if not points:
        pytest.skip(result.data["training"].get("note", "no checkpoints"))
    steps = [p["step"] for p in points]
    assert steps == sorted(steps) and len(steps) == len(set(steps))
    assert len(points) <= fact_consistency.quick_config().max_checkpoints + 1
    assert points[-1]["correct"] == result.data["final"]["correct"]


@torch.no_grad()
def test_one_shortcut_layer_through_hooks(result, model):
    """Refit the shortcut of one layer on the saved fit facts and score the held-out facts
    with the shortcut installed as an intervention (layers still run, last layer replaced)."""
    sc_data = result.data["shortcut"]
    entry = sc_data["layers"][-1]
    world = organism.world(FOLDER)
    config = result.config
    fit, held = set(sc_data["fit_facts"]), set(sc_data["eval_facts"])
    queries = {s: organism.fact_queries(world, s) for s in result.data["scripts"]}
    fit_prompts = [q.prompt for s in queries for q in queries[s] if q.fact_index in fit]
    sc = lens.shortcuts.fit(
        model,
        lens.tokens.batch(model, fit_prompts),
        src_layer=entry["layer"],
        method=config["shortcut_method"],
        ridge=config["shortcut_ridge"],
        batch_size=config["batch_size"],
        progress=False,
    )
    for lang in ("en", "ka"):
        qs = [q for q in queries[lang] if q.fact_index in held]
        b = lens.tokens.batch(model, [q.prompt for q in qs], padding_side="right")
        with lens.apply(model, interventions=[sc]):
            logits = model(b.tokens, attention_mask=b.attention_mask)
        pred = logits[torch.arange(len(b)), b.last_positions].argmax(-1).tolist()
        gold = model.tokenizer.convert_tokens_to_ids([q.answer for q in qs])
        correct = sorted(q.fact_index for q, p, g in zip(qs, pred, gold) if p == g)
        assert correct == entry["correct"][lang]


def test_findings_are_consistent_with_the_numbers(result):
    data = result.data
    pivot, final = data["pivot"], data["final"]
    others = [s for s in data["scripts"] if s != pivot]
    lag = all(final["recall"][s] < final["recall"][pivot] for s in others)
    assert result.findings[0].reproduced == lag
    sc = data["shortcut"]
    best = max(sc["layers"], key=lambda e: (e["mean_clc"] or 0.0, e["mean_recall"]))
    raises = (
        best["mean_clc"] > sc["full"]["mean_clc"]
        and best["mean_recall"] >= sc["full"]["mean_recall"]
    )
    assert result.findings[-1].reproduced == raises


def test_clc_helper_and_config_errors(model):
    assert fact_consistency.clc({1, 2, 3}, {2, 3, 4}) == 0.5
    assert fact_consistency.clc(set(), set()) is None
    with pytest.raises(ValueError, match="valid keys"):
        fact_consistency.Config.from_dict({"max_facts": 3, "shortcuts": [1]})
    with pytest.raises(ValueError, match="shortcut_layers"):
        fact_consistency.run(
            model,
            fact_consistency.Config(
                scripts=["en"],
                max_facts=4,
                checkpoints=False,
                shortcut_layers=[99],
                organism_folder=FOLDER,
            ),
        )
