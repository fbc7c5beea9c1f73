"""The training script end to end on a tiny config (seconds): the CLI writes a loadable HF
folder with tokenizer, world spec, log and float16 checkpoints, and lens loads every one of
them through the ordinary HF-folder path."""

from __future__ import annotations

import json

import pytest
import torch

import lens
from lens.cli import main
from lens.organism import checkpoint_path, checkpoints, load_organism, world
from lens.organism.train import TrainConfig, checkpoint_steps


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("organism")
    rc = main(
        [
            "organism",
            "train",
            "--out",
            str(out),
            "--steps",
            "10",
            "--tiny",
            "--quiet",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    return out


def test_folder_contents(trained):
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "world.json",
        "train_log.jsonl",
        "behaviour.json",
    ):
        assert (trained / name).is_file(), name
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["hidden_act"] == "silu"
    log = [json.loads(x) for x in (trained / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "config" and log[-1]["event"] == "final"
    assert [e["step"] for e in log if "loss" in e] == [10]
    steps = checkpoints(trained)
    assert steps == checkpoint_steps(TrainConfig(steps=10)) and len(steps) >= 5


def test_load_final_and_checkpoints(trained):
    final = load_organism(folder=trained)
    assert final.cfg.default_prepend_bos and final.cfg.normalization_type == "RMS"
    w = world(trained)
    b = lens.tokens.batch(final, ["the job of alice is"])
    assert b.tokens[0, 0].item() == final.tokenizer.bos_token_id  # BOS prepended once
    assert b.tokens.shape[1] == 1 + len("the job of alice is".split())
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM.from_pretrained(str(trained), attn_implementation="eager").eval()
    with torch.no_grad():
        ref = hf(b.tokens).logits
        got = final(b.tokens)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    first = load_organism(folder=trained, checkpoint=0)
    assert checkpoint_path(0, trained) == checkpoint_path(checkpoints(trained)[0], trained)
    sd = first.state_dict()
    assert all(v.dtype == torch.float32 for v in sd.values() if v.is_floating_point())
    assert w.pivot == "en"
    with pytest.raises(ValueError, match="no checkpoint"):
        checkpoint_path(99, trained)


def test_fact_consistency_measures_the_loaded_folders_own_checkpoints(trained):
    """A trained organism loaded by its folder is paired with its own checkpoints, not the
    shipped model's (steps 100..1500 of 2000)."""
    import dataclasses

    from lens.studies import fact_consistency as fc

    model = lens.load_model(str(trained))
    res = fc.run(model, dataclasses.replace(fc.quick_config(), shortcut_layers=[]))
    points = res.data.training["points"]
    assert [p["step"] for p in points[:-1]] == [checkpoints(trained)[0], checkpoints(trained)[-1]]
    assert points[-1]["label"] == "final (step 10)"
