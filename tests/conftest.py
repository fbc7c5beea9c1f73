"""Shared fixtures: random tiny bridges of two families (native and from HF folders), and the
stories260k folder when present. Tiny models run single-threaded (2-core CI machines)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import lens
from tests.architectures import (  # noqa: F401  (six-architecture fixtures)
    arch,
    arch_folders,
    arch_hf,
    arch_model,
)
from tests.planted_models import natural, null, planted, shortcut  # noqa: F401  (planted organism)

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
    else:
        byte_bpe_tokenizer().save_pretrained(folder)
    return folder


STORY_TEXT = [
    "Once upon a time, there was a little girl named Lily.",
    "She loved to play outside in the garden with her dog.",
    "One day, the sun was shining and the birds were happy.",
    "Tom had a big red ball. He liked to throw it to his friend.",
    "There was a small tree in the park. Every day, the children played there.",
    "Mom said it was time for bed, so the boy went to sleep.",
    "The cat sat on the mat and looked at the bird in the sky.",
]


def byte_bpe_tokenizer():
    """A byte-level BPE tokenizer (512 ids: <unk> 0, <s> 1, </s> 2), trained here on a few
    sentences, for random HF folders when stories260k's tokenizer is absent."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(STORY_TEXT * 20, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


@pytest.fixture(scope="session")
def hf_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {f: save_random_hf(f, root / f) for f in FAMILIES}


@pytest.fixture
def hf_model(family, hf_folders):
    """A random HF model of the family loaded through boot_transformers."""
    return lens.load_model(hf_folders[family])


@torch.no_grad()
def manual_loss(model, texts, interventions=(), add_special_tokens=True) -> float:
    """Token-weighted mean next-token cross-entropy, one unpadded text at a time (an
    independent reference for the studies' batched losses)."""
    total, count = 0.0, 0
    with lens.apply(model, *interventions):
        for text in texts:
            ids = model.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
            tokens = torch.tensor([ids])
            logp = torch.log_softmax(model(tokens)[0].double(), dim=-1)
            targets = tokens[0, 1:]
            total += -float(logp[torch.arange(len(targets)), targets].sum())
            count += len(targets)
    return total / count
