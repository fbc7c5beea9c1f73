"""lens.data on damaged files: binary data, cut lines, a missing or second header, a file that
stops after its header. Each gives one DataFormatError naming the file and the true line (and
column, counted within the line)."""

from __future__ import annotations

import json

import pytest

from lens import data
from lens.data import DataFormatError

HEADER = json.dumps({"format": "lens-facts", "version": 1})
FACT = json.dumps(
    {
        "id": "f1",
        "language": "en",
        "subject": "France",
        "relation": "capital",
        "object": "Paris",
        "prompt": "The capital of France is",
    }
)


def error_of(tmp_path, content: bytes) -> DataFormatError:
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataFormatError) as info:
        data.load(path)
    assert str(info.value).startswith(f"{path}:{info.value.line}")
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize("newline", [b"\n", b""])
def test_a_cut_line_reports_its_true_column(tmp_path, newline):
    """The issue: cut at 64 characters, the column said 1 (the error fell on the newline)."""
    cut = FACT.replace("f1", "f2")[:64]
    err = error_of(tmp_path, f"{HEADER}\n{FACT}\n{cut}".encode() + newline)
    assert err.line == 3
    assert "column 65" in str(err) and "truncated" in str(err)
    assert json.loads(cut + FACT[64:].replace("f1", "f2"))  # the intact line was valid


def test_bad_json_in_the_middle_of_a_line_is_not_called_truncated(tmp_path):
    err = error_of(tmp_path, f'{HEADER}\n{{"language": "en",, "text": "x"}}\n'.encode())
    assert err.line == 2 and "column 19" in str(err) and "truncated" not in str(err)


def test_a_binary_file_names_file_and_line(tmp_path):
    err = error_of(tmp_path, f"{HEADER}\n{FACT}\n".encode() + bytes(range(128, 256)))
    assert err.line == 3 and "not UTF-8" in str(err) and "0x80" in str(err)
    err = error_of(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00")
    assert err.line == 1 and "not UTF-8" in str(err)
    err = error_of(tmp_path, f"{HEADER}\n".encode() + b"\x00\x01\x02\n")
    assert err.line == 2 and "NUL byte" in str(err)


def test_a_file_cut_after_its_header_has_no_records(tmp_path):
    err = error_of(tmp_path, f"{HEADER}\n".encode())
    assert err.line == 2 and "no records" in str(err) and "truncated" in str(err)


def test_two_joined_files_of_different_versions(tmp_path):
    second = json.dumps({"format": "lens-facts", "version": 2})
    err = error_of(tmp_path, f"{HEADER}\n{FACT}\n{second}\n{FACT}\n".encode())
    assert (err.line, err.field) == (3, "format")
    assert "second header" in str(err) and "version 2" in str(err)


def test_a_wrong_header_is_one_error_on_line_1(tmp_path):
    err = error_of(tmp_path, f"{FACT}\n{FACT}\n".encode())
    assert (err.line, err.field) == (1, "format") and "header" in str(err)
    err = error_of(tmp_path, b"[1, 2]\n")
    assert (err.line, err.field) == (1, "format")


def test_a_byte_order_mark_and_crlf_line_ends_are_read(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(f"\ufeff{HEADER}\r\n{FACT}\r\n".encode())
    ds = data.load(path)
    assert len(ds) == 1 and ds.records[0].object == "Paris"
