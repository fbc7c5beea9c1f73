"""Fuzz fixtures: a tiny random Llama (token-id prompts; no tokenizer) and the organism (word
level text prompts), each loaded once per module, single-threaded."""

from __future__ import annotations

import os

import pytest
import torch

import lens
from tests.fuzz.property import MESSAGES, OUTCOMES, peak_rss

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    return lens.load_model(lens.tiny_config("llama"))


@pytest.fixture(scope="module")
def organism():
    return lens.load_model("organism")


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if not OUTCOMES:
        return
    total = sum(OUTCOMES.values())
    terminalreporter.write_sep("-", f"fuzz: {total} generated cases checked")
    for key in sorted(OUTCOMES):
        terminalreporter.write_line(f"  {key:<48} {OUTCOMES[key]}")
    if os.environ.get("LENS_FUZZ_VERBOSE"):
        for text, n in MESSAGES.most_common(40):
            terminalreporter.write_line(f"  {n:5d}  {text}")
    terminalreporter.write_line(f"  peak RSS of the test process: {peak_rss() / 2**30:.2f} GiB")
