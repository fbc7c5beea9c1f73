"""``lens generate`` and ``lens patchscope`` print and write what the API computes, and refuse
bad input with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import torch

import lens
from interventions import ActivationAddition
from lens.cli import main
from tests.conftest import stories_path


def test_generate_prints_the_api_text(stories_model, capsys):
    assert (
        main(["generate", str(stories_path()), "Once upon a time", "--max-new-tokens", "12"]) == 0
    )
    out = capsys.readouterr().out
    want = lens.generate.generate(stories_model, ["Once upon a time"], max_new_tokens=12)[0]
    assert out.splitlines()[0] == want
    assert "KV cache" in out


def test_generate_side_by_side_with_an_intervention(stories_model, tmp_path, capsys):
    vec = torch.randn(stories_model.cfg.d_model, generator=torch.Generator().manual_seed(0)) * 20
    steer = ActivationAddition(vec, layer=2, positions="generated")
    path = tmp_path / "steer.json"
    path.write_text(json.dumps(steer.to_dict()))
    args = ["generate", str(stories_path()), "Once upon a time", "--max-new-tokens", "6"]
    assert main([*args, "--intervention", str(path)]) == 0
    out = capsys.readouterr().out
    free, steered = (
        lens.generate.generate(stories_model, ["Once upon a time"], max_new_tokens=6, **kw)[0]
        for kw in ({}, {"interventions": [steer]})
    )
    assert free != steered
    assert "unsteered" in out and free.split()[0] in out and steered.split()[0] in out


def test_generate_refuses_bad_input(tmp_path, capsys):
    src = str(stories_path())
    assert main(["generate", src, "hi", "--max-new-tokens", "0"]) == 2
    assert "--max-new-tokens must be >= 1" in capsys.readouterr().err
    assert main(["generate", src, "hi", "--intervention", str(tmp_path / "none.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["generate", src, "hi", "--sample", "--temperature", "0"]) == 2
    assert "temperature must be > 0" in capsys.readouterr().err


def test_patchscope_writes_the_api_result(stories_model, tmp_path, capsys):
    args = ["patchscope", str(stories_path()), "Lily went to the park", "--layers", "1,3"]
    assert main([*args, "--out", str(tmp_path / "ps")]) == 0
    saved = lens.patchscope.PatchscopeResult.load(tmp_path / "ps")
    want = lens.patchscope.patchscope(
        stories_model, "Lily went to the park", source_layers=[1, 3], top_k=5
    )
    assert np.array_equal(saved.top_ids, want.top_ids)
    assert (tmp_path / "ps" / "patchscope.png").stat().st_size > 1000
    assert "layer  3 ->  3" in capsys.readouterr().out
    assert main([*args, "--position", "99", "--out", str(tmp_path / "bad")]) == 2
    assert "beyond the source prompt" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
