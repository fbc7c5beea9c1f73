"""``lens study NAME --data FILE|NAME``: a bad dataset is one error line and exit 2, before any
model is loaded; a good one reaches the study's config."""

from __future__ import annotations

from pathlib import Path

import pytest

from lens.cli import main
from lens.cli import study as study_cli

TINY_FACTS = Path(__file__).resolve().parents[1] / "data" / "tiny_facts.jsonl"


@pytest.fixture
def no_model(monkeypatch):
    def refuse(source):
        raise AssertionError(f"the model {source!r} must not be loaded")

    monkeypatch.setattr(study_cli, "_load", refuse)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("nowhere/missing.jsonl", "does not exist"),
        ("no-such-builtin", "no built-in dataset"),
        ("translations", "needs facts"),
        ("BAD", "bad.jsonl:2: field"),
    ],
)
def test_bad_data_exits_2_before_loading(no_model, tmp_path, capsys, data, message):
    if data == "BAD":
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"format": "lens-facts", "version": 1}\n{"id": "x"}\n')
        data = str(bad)
    code = main(["study", "fact_consistency", "--data", data, "--out", str(tmp_path / "o")])
    lines = capsys.readouterr().err.strip().splitlines()
    err = [x for x in lines if not x.startswith("loading ")]  # the announcement comes first
    assert code == 2
    assert len(err) == 1 and err[0].startswith("lens: error:") and message in err[0], err


def test_good_data_reaches_the_config(monkeypatch, tmp_path):
    seen = {}

    def fake_load(source):
        raise KeyboardInterrupt  # stop right after the config is built

    real = study_cli.with_data

    def spy(module, config, source):
        seen["config"] = real(module, config, source)
        return seen["config"]

    monkeypatch.setattr(study_cli, "_load", fake_load)
    monkeypatch.setattr(study_cli, "with_data", spy)
    code = main(["study", "relation_neurons", "--data", str(TINY_FACTS), "--out", str(tmp_path)])
    assert code == 130 and seen["config"].data == str(TINY_FACTS)
