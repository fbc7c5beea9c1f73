"""``lens patch`` writes what the API computes, and refuses bad input with exit code 2."""

from __future__ import annotations

import json

import torch

from lens.cli import main
from lens.cli.lens_cmd import load_source
from lens.patching import activation_patching


def test_patch_command_matches_the_api(tmp_path):
    args = ["--clean", "The cat sat", "--corrupt", "The dog sat", "--answer", "id:40"]
    args += ["--wrong", "a", "--sites", "resid_pre", "z", "--out", str(tmp_path)]
    assert main(["patch", "random:llama", *args]) == 0
    saved = json.loads((tmp_path / "result.json").read_text())
    model = load_source("random:llama")
    expected = activation_patching(
        model, ["The cat sat"], ["The dog sat"], answer=40, wrong="a",
        sites=["resid_pre", "z"], progress=False,
    )  # fmt: skip
    for site in ("resid_pre", "z"):
        got = torch.tensor(saved["values"][site], dtype=torch.float64)
        torch.testing.assert_close(got, expected.values(site), atol=1e-6, rtol=0)
        assert (tmp_path / f"{site}.png").stat().st_size > 1000


def test_patch_command_refuses_unequal_lengths(tmp_path, capsys):
    args = ["--clean", "The cat sat", "--corrupt", "The horse sat", "--answer", "a"]
    assert main(["patch", "random:gpt2", *args, "--out", str(tmp_path)]) == 2
    assert "equal token length" in capsys.readouterr().err
