"""The circuit_discovery study: on the organism (its relation pairs) and stories260k (built-in
story IOI pairs), from the library and from `lens circuit` with a user's pairs file; its
numbers are the primitives'."""

from __future__ import annotations

import json

import pytest

import lens
from lens.circuits import attribute
from lens.cli import main as cli_main
from lens.data import PairRecord, save
from lens.studies import StudyResult
from lens.studies import circuit_discovery as cd
from tests.conftest import stories_path


def test_quick_study_on_the_organism(tmp_path):
    model = lens.load_model("organism")
    res = cd.run(model, cd.quick_config())
    out = res.save(tmp_path / "cd")
    d = json.loads((out / "results.json").read_text())["data"]
    assert d["source"] == "organism-pairs" and d["task"] == "occupation" and d["n_pairs"] == 4
    assert set(d["methods"]) == {"eap", "eap-ig"}
    for e in d["methods"].values():
        c = e["curve"]
        assert c["n_edges"][0] == 0 and c["n_edges"][-1] == d["n_edges"]
        assert c["faithfulness"][0] == pytest.approx(0.0, abs=1e-6)
        assert c["faithfulness"][-1] == pytest.approx(1.0, abs=1e-4)
        assert c["clean_metric"] > c["empty_metric"]
    assert (out / "circuit.png").is_file() and (out / "faithfulness.png").is_file()
    assert "CPR" in (out / "report.md").read_text()
    assert isinstance(StudyResult.load(out), cd.Result) and res.findings
    # the top edges are attribute()'s on the same pairs
    recs = cd.select_records(list(lens.data.load_builtin("organism-pairs")), None, None)
    pairs, _ = cd.usable_pairs(model, recs, 4, only_correct=True)
    g = attribute(model, [p[0] for p in pairs], [p[1] for p in pairs], answer=[p[2] for p in pairs],
                  wrong=[p[3] for p in pairs], method="eap")  # fmt: skip
    w, r, s = d["methods"]["eap"]["top_edges"][0]
    assert (w, r) == g.ranked()[0][:2] and s == pytest.approx(g.score(w, r), rel=1e-5)


def test_stories260k_with_builtin_story_pairs(tmp_path):
    model = lens.load_model(stories_path())
    cfg = cd.Config(task="ioi-story", n_pairs=3, steps=2, n_sizes=6, methods=["eap-ig"])
    res = cd.run(model, cfg)
    assert res.data.task == "ioi-story" and res.data.n_pairs == 3
    assert res.data.n_kv < res.data.n_heads  # GQA: k/v readers per key/value head
    kv = [r for _, r, _ in res.data.methods["eap-ig"]["top_edges"] if r[-3:] in ("<k>", "<v>")]
    assert all(".kv" in r for r in kv)
    res.save(tmp_path / "st")


def test_cli_with_a_user_pairs_file(tmp_path, capsys):
    recs = [
        PairRecord("job", "en", "the job of alice is", "the job of bob is", "lawyer", "pilot"),
        PairRecord("job", "en", "the job of bob is", "the job of alice is", "pilot", "lawyer"),
    ]
    path = save(tmp_path / "mine.jsonl", recs)
    out = tmp_path / "out"
    code = cli_main(["circuit", "organism", "--data", str(path), "--methods", "eap",
                     "--pairs", "2", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    d = json.loads((out / "results.json").read_text())
    assert d["data"]["source"] == str(path) and d["data"]["n_records"] == 2
    assert d["config"]["methods"] == ["eap"] and d["config"]["default_method"] == "eap"
    assert cli_main(["circuit", "organism", "--data", str(path), "--task", "nope",
                     "--out", str(tmp_path / "o2")]) == 2  # fmt: skip
    assert "no pairs of task 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
