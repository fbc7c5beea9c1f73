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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

import lens

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


# --- the same model as plain transformers modules (the independent computations) ----------

# Per architecture, where transformers keeps each piece (attribute paths from the model root):
# blocks, final norm, unembedding, the module whose output is a block's attention write to
# the residual stream, the MLP's write, the MLP output projection and the attention output
# projection (their inputs are the MLP activations and the concatenated heads).
HF_PATHS: dict[str, dict[str, str]] = {
    "llama": {},
    "qwen2": {},
    "mistral": {},
    "gemma2": {"attn_write": "post_attention_layernorm", "mlp_write": "post_feedforward_layernorm"},
    "gpt2": {
        "blocks": "transformer.h",
        "final_norm": "transformer.ln_f",
        "attn_write": "attn",
        "mlp_down": "mlp.c_proj",
        "attn_o": "attn.c_proj",
    },
    "neox": {
        "blocks": "gpt_neox.layers",
        "final_norm": "gpt_neox.final_layer_norm",
        "attn_write": "attention",
        "mlp_down": "mlp.dense_4h_to_h",
        "attn_o": "attention.dense",
    },
}
_DEFAULT_PATHS = {
    "blocks": "model.layers",
    "final_norm": "model.norm",
    "unembed": "lm_head",
    "attn_write": "self_attn",
    "mlp_write": "mlp",
    "mlp_down": "mlp.down_proj",
    "attn_o": "self_attn.o_proj",
}


def hf_part(hf: Any, arch: str, part: str, layer: int | None = None) -> Any:
    """The transformers module ``part`` of ``arch`` (inside block ``layer`` when given)."""
    paths = {**_DEFAULT_PATHS, **HF_PATHS[arch]}
    if layer is None:
        return hf.get_submodule(paths[part])
    return hf.get_submodule(paths["blocks"])[layer].get_submodule(paths[part])


def n_blocks(hf: Any, arch: str) -> int:
    return len(hf_part(hf, arch, "blocks"))


def first(out: Any) -> Tensor:
    """The hidden-state tensor of a module output (a tensor or a tuple starting with one)."""
    return out if isinstance(out, Tensor) else out[0]


def with_first(out: Any, value: Tensor) -> Any:
    """``out`` with its hidden-state tensor replaced by ``value``."""
    return value if isinstance(out, Tensor) else (value, *out[1:])


@contextmanager
def hooked(*handles: Any) -> Iterator[None]:
    """Remove transformers hook handles on exit."""
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def edit_output(module: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """A forward hook replacing the module's hidden-state output by ``fn(output)``."""
    return module.register_forward_hook(lambda m, args, out: with_first(out, fn(first(out))))


def edit_input(module: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """A forward pre-hook replacing the module's first input (hidden states) by ``fn(input)``."""

    def pre(m: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            return (fn(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": fn(kwargs["hidden_states"])}

    return module.register_forward_pre_hook(pre, with_kwargs=True)


def block_outputs(hf: Any, arch: str, tokens: Tensor, **kw: Any) -> tuple[list[Tensor], Tensor]:
    """Every block's output (the residual stream after it) and the logits of one HF forward."""
    outs: list[Tensor] = []
    handles = [
        block.register_forward_hook(lambda m, a, out: outs.append(first(out).detach()))
        for block in hf_part(hf, arch, "blocks")
    ]
    with hooked(*handles), torch.no_grad():
        logits = hf(tokens, **kw).logits
    return outs, logits


def hand_decode(hf: Any, arch: str, h: Tensor) -> Tensor:
    """Logits of residual vectors through the HF final norm and unembedding (and Gemma-2's
    soft cap, read from the transformers config)."""
    with torch.no_grad():
        logits = hf_part(hf, arch, "unembed")(hf_part(hf, arch, "final_norm")(h))
    cap = getattr(hf.config, "final_logit_softcapping", None)
    return cap * torch.tanh(logits / cap) if cap else logits


# --- pytest fixtures (imported by tests/conftest.py) ----------------------------------------


@pytest.fixture(scope="session")
def arch_folders(tmp_path_factory: Any) -> dict[str, Path]:
    """The six folders, built once per session."""
    from tests.conftest import byte_bpe_tokenizer  # noqa: PLC0415  (conftest imports us)

    root = tmp_path_factory.mktemp("architectures")
    tok = byte_bpe_tokenizer()
    return {name: save_architecture(name, root / name, tok) for name in ARCHITECTURES}


@pytest.fixture(params=ARCHITECTURES)
def arch(request: Any) -> str:
    return request.param


_MODELS: dict[Path, Any] = {}
_REFERENCES: dict[Path, Any] = {}


@pytest.fixture
def arch_model(arch: str, arch_folders: dict[str, Path]) -> Any:
    """The architecture's bridge, shared by the session: a test that edits weights restores
    them (or loads its own copy with ``lens.load_model(arch_folders[arch])``)."""
    folder = arch_folders[arch]
    if folder not in _MODELS:
        _MODELS[folder] = lens.load_model(folder)
    return _MODELS[folder]


@pytest.fixture
def arch_hf(arch: str, arch_folders: dict[str, Path]) -> Any:
    """The same folder as a plain transformers model (shared: never edit its weights)."""
    folder = arch_folders[arch]
    if folder not in _REFERENCES:
        _REFERENCES[folder] = load_reference(folder)
    return _REFERENCES[folder]
