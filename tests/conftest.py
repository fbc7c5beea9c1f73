"""Shared fixtures: random tiny bridges of two families (native and from HF folders), and the
stories260k folder when present. Tiny models run single-threaded (2-core CI machines)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import lens

torch.set_num_threads(1)

STORIES = Path(__file__).resolve().parents[2] / "shared" / "assets" / "stories260k"
STORIES = Path(os.environ.get("LENS_STORIES260K", STORIES))
FAMILIES = ("gpt2", "llama")


def stories_path() -> Path:
    if not (STORIES / "config.json").is_file():
        pytest.skip(f"stories260k not found at {STORIES} (set LENS_STORIES260K)")
    return STORIES


@pytest.fixture(scope="session")
def stories_model():
    return lens.load_model(stories_path())


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture
def native_model(family):
    """A random boot_native bridge: gpt2 (LN, learned pos, biases) or llama (RMS, rotary, GQA)."""
    return lens.load_model(lens.tiny_config(family))


def save_random_hf(family: str, folder: Path, seed: int = 0) -> Path:
    """A random transformers model of the family saved as an HF folder, with a real tokenizer
    (stories260k's, vocab 512) when available."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if family == "gpt2":
        hf = GPT2LMHeadModel(
            GPT2Config(vocab_size=512, n_embd=64, n_layer=3, n_head=4, n_positions=128)
        )
    else:
        hf = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=512,
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=3,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=128,
                bos_token_id=1,
                eos_token_id=2,
            )
        )
    hf.save_pretrained(folder)
    if (STORIES / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(STORIES).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def hf_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {f: save_random_hf(f, root / f) for f in FAMILIES}


@pytest.fixture
def hf_model(family, hf_folders):
    """A random HF model of the family loaded through boot_transformers."""
    return lens.load_model(hf_folders[family])
