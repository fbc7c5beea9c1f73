"""Fuzzing lens.data.load with damaged dataset files: a valid file cut at any byte, bytes
flipped or inserted, a wrong or second header (mixed versions), arbitrary binary content.
Property: a Dataset of valid records, or one DataFormatError whose message starts with
``file:line`` (the line really holding the damage when a line was cut or corrupted)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from lens import data
from lens.data import DataFormatError
from tests.fuzz.property import OUTCOMES
from tests.fuzz.strategies import fuzz

HEADER = {"format": "lens-translations", "version": 1}
WORDS = [("dog", "en", "dog"), ("dog", "fr", "chien"), ("eye", "ru", "глаз"), ("eye", "fr", "œil")]


def valid_file() -> bytes:
    lines = [json.dumps(HEADER)] + [
        json.dumps({"concept": c, "language": lang, "word": w}, ensure_ascii=False)
        for c, lang, w in WORDS
    ]
    return ("\n".join(lines) + "\n").encode()


GOOD = valid_file()
mutation = st.one_of(
    st.tuples(st.just("cut"), st.integers(0, len(GOOD))),
    st.tuples(st.just("flip"), st.integers(0, len(GOOD) - 1), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, len(GOOD)), st.binary(min_size=1, max_size=4)),
    st.tuples(
        st.just("header"),
        st.sampled_from(["lens-translations", "lens-facts", "lens-words", 1, None]),
        st.sampled_from([1, 2, 0, "1", None, True]),
    ),
    st.tuples(st.just("append header"), st.sampled_from([1, 2, 3])),
    st.tuples(st.just("binary"), st.binary(max_size=64)),
)


def mutate(case) -> bytes:
    kind = case[0]
    if kind == "cut":
        return GOOD[: case[1]]
    if kind == "flip":
        return GOOD[: case[1]] + bytes([case[2]]) + GOOD[case[1] + 1 :]
    if kind == "insert":
        return GOOD[: case[1]] + case[2] + GOOD[case[1] :]
    if kind == "header":
        rest = GOOD.split(b"\n", 1)[1]
        return json.dumps({"format": case[1], "version": case[2]}).encode() + b"\n" + rest
    if kind == "append header":
        second = json.dumps({"format": "lens-translations", "version": case[1]}).encode()
        return GOOD + second + b"\n" + GOOD.split(b"\n", 1)[1]
    return case[1]


@fuzz(400)
@given(case=mutation)
def test_damaged_dataset_files(tmp_path_factory, case):
    path = tmp_path_factory.mktemp("data") / "words.jsonl"
    content = mutate(case)
    path.write_bytes(content)
    try:
        ds = data.load(path)
    except DataFormatError as err:
        msg = str(err)
        assert msg.startswith(f"{path}:{err.line}") and "\n" not in msg
        n_lines = content.count(b"\n") + 1
        assert 1 <= err.line <= n_lines + 1, (err.line, n_lines)
        if case[0] == "cut":
            assert err.line <= content.count(b"\n") + 2
        OUTCOMES[f"data.load ({case[0]}): clear error"] += 1
        return
    assert len(ds) >= 1 and all(r.word.strip() for r in ds.records)
    OUTCOMES[f"data.load ({case[0]}): dataset"] += 1
