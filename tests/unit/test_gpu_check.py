"""benchmarks/gpu_check.py: exits cleanly without a GPU; its CPU dry run checks and passes."""

from __future__ import annotations

import pytest
import torch

from benchmarks import gpu_check
from tests.conftest import stories_path


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the real check runs")
def test_without_gpu_it_says_so_and_exits_0(capsys):
    assert gpu_check.main(["--model", "does-not-matter"]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out


def test_patching_pairs_have_equal_lengths_and_different_answers():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(stories_path())
    pairs = gpu_check.patching_pairs(tok, 4)
    assert pairs
    for clean, corrupt, answer, wrong in pairs:
        lengths = {len(tok(p, add_special_tokens=False)["input_ids"]) for p in (clean, corrupt)}
        assert len(lengths) == 1 and clean != corrupt and answer != wrong
