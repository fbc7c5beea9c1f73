"""The lens-pairs format: validation with file:line: field errors, the built-in pairs, the
organism's relation pairs, `lens data check`."""

from __future__ import annotations

import json

import pytest

from lens import data
from lens.cli import main as cli_main

HEADER = json.dumps({"format": "lens-pairs", "version": 1})
GOOD = {
    "task": "ioi", "language": "en", "clean": "Ann and Bob met. Bob thanked",
    "corrupt": "Ann and Bob met. Ann thanked", "answer": " Ann", "wrong": " Bob",
}  # fmt: skip


def _parse(*records):
    return data.parse_lines([HEADER, *(json.dumps(r) for r in records)], "p.jsonl")


def test_a_valid_file_round_trips(tmp_path):
    ds = _parse(GOOD)
    assert ds.kind == "pairs" and ds.records[0] == data.PairRecord(**GOOD)
    path = data.save(tmp_path / "p.jsonl", ds)
    assert data.load(path).records == ds.records


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"corrupt": "x y"}, "corrupt", "equals the clean one"),
        ({"wrong": " Ann"}, "wrong", "wrong equals answer"),
        ({"answer": 5}, "answer", "expected a string"),
        ({"extra": "x"}, "extra", "unknown field"),
    ],
)
def test_bad_records_name_line_and_field(change, field, message):
    with pytest.raises(data.DataFormatError, match=message) as err:
        _parse(GOOD, {**GOOD, "clean": "x y", **change})
    assert err.value.line == 3 and err.value.field == field


def test_duplicate_pairs_are_refused():
    with pytest.raises(data.DataFormatError, match="duplicate"):
        _parse(GOOD, GOOD)


def test_builtin_pairs_and_organism_pairs():
    ds = data.load_builtin("pairs")
    tasks = ds.counts()["task"]
    assert tasks["ioi"] == 64 and tasks["ioi-story"] == 32 and tasks["induction"] == 32
    for r in ds.records:  # the corrupt prompt changes one word, the answers swap roles
        assert len(r.clean.split()) == len(r.corrupt.split())
        if r.task.startswith("ioi"):
            assert r.answer.strip() in r.clean and r.wrong.strip() in r.clean
    org = data.load_builtin("organism-pairs")
    r = org.records[0]
    assert r.clean != r.corrupt and r.answer != r.wrong and r.task in {x.task for x in org}


def test_data_check_prints_tasks(capsys):
    assert cli_main(["data", "check", "pairs"]) == 0
    out = capsys.readouterr().out
    assert "lens-pairs v1, 128 records" in out and "ioi 64" in out
