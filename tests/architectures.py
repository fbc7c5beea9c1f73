"""Six tiny random Hugging Face folders, one per architecture family, each with a known
structural trait, built offline with transformers' own config classes.

=========  ======================================================================
name       trait it brings
=========  ======================================================================
llama      RMSNorm, grouped-query attention, gated SiLU MLP, rotary
gpt2       LayerNorm, biases everywhere, learned positions, multi-head attention
gemma2     RMSNorm with the +1 weight offset, tied embeddings, embedding scale,
           sandwich norms, logit and attention soft-caps, GQA
qwen2      query/key/value biases, grouped-query attention
neox       parallel attention + MLP (Pythia), partial rotary (25 %), LayerNorm
mistral    sliding-window attention (window 4, shorter than the test prompts), GQA
=========  ======================================================================

Every folder shares one self-built byte-level BPE tokenizer (``conftest.byte_bpe_tokenizer``,
512 ids), so nothing depends on a downloaded asset. Each model has 2 layers and d_model 32-64
and builds in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

ARCHITECTURES = ("llama", "gpt2", "gemma2", "qwen2", "neox", "mistral")
VOCAB = 512


def _config(name: str) -> Any:
    import transformers as tf  # noqa: PLC0415  (slow import, only when building)

    rope = dict(vocab_size=VOCAB, max_position_embeddings=64, bos_token_id=1, eos_token_id=2)
    if name == "llama":
        return tf.LlamaConfig(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            **rope,
        )
    if name == "gpt2":
        return tf.GPT2Config(vocab_size=VOCAB, n_embd=48, n_layer=2, n_head=4, n_positions=64)
    if name == "gemma2":
        return tf.Gemma2Config(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            final_logit_softcapping=5.0,
            attn_logit_softcapping=20.0,
            query_pre_attn_scalar=8,
            sliding_window=4,
            tie_word_embeddings=True,
            pad_token_id=0,
            **rope,
        )
    if name == "qwen2":
        return tf.Qwen2Config(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=False,
            **rope,
        )
    if name == "neox":
        return tf.GPTNeoXConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            rotary_pct=0.25,
            use_parallel_residual=True,
            tie_word_embeddings=False,
            **rope,
        )
    if name == "mistral":
        return tf.MistralConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            sliding_window=4,
            **rope,
        )
    raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {name!r}")


def _perturb_norms(hf: Any, generator: torch.Generator) -> None:
    """Random norm weights and biases (init leaves them at 1/0 or 0, which would hide a missing
    offset or a dropped bias)."""
    with torch.no_grad():
        for module_name, module in hf.named_modules():
            if "norm" not in type(module).__name__.lower() and "ln" not in module_name:
                continue
            for p in module.parameters(recurse=False):
                p.add_(0.3 * torch.randn(p.shape, generator=generator))


def save_architecture(
    name: str, folder: Path, tokenizer: Any, seed: int = 0, **overrides: Any
) -> Path:
    """Build the random ``name`` model with transformers and save it (weights + tokenizer);
    ``overrides`` set config fields (e.g. ``final_logit_softcapping=None``)."""
    from transformers import AutoModelForCausalLM  # noqa: PLC0415

    torch.manual_seed(seed)
    config = _config(name)
    config.initializer_range = 0.1  # larger than the 0.02 default: logits of order 1
    for key, value in overrides.items():
        setattr(config, key, value)
    config.attn_implementation = "eager"
    hf = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    _perturb_norms(hf, torch.Generator().manual_seed(seed + 1))
    hf.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def load_reference(folder: Path) -> Any:
    """The same folder as a plain transformers model (the independent computation)."""
    from transformers import AutoModelForCausalLM  # noqa: PLC0415

    hf = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    return hf.eval()
