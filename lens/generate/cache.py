"""A correct Hugging Face KV cache through a TransformerLens 4.3 ``TransformerBridge``.

The bridge re-implements each attention module so that its hooks fire, and extends the KV
cache only when the cache arrives under the keyword ``past_key_values``. transformers 5's
decoder layers hand it to the attention module as ``cache=`` instead, so the bridge never
extends it: every cached step attends to itself alone, and TransformerLens's own cached
``generate`` writes wrong text on Llama, GPT-2 and the other transformers-5 models.
:func:`cache_routing` adds one forward pre-hook per attention bridge that passes the cache
on under the name the bridge reads; the hooks live only for the ``with`` block.

Whether a model's cache is then right is checked once per model by :func:`cache_problem`,
on a short left-padded input: the logits of two cached steps against one full forward.
Native ``boot_native`` bridges (no Hugging Face model) have no KV cache at all.
"""

from __future__ import annotations

import copy
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

_PROBLEMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> str | None


@contextmanager
def cache_routing(model: Any) -> Iterator[None]:
    """Route transformers 5's ``cache=`` to the bridge's ``past_key_values=`` in every
    attention bridge while the block runs (removed on exit, also on errors).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.models.tiny_config("llama"))
        >>> with cache_routing(model):
        ...     pass
        >>> sum(len(m._forward_pre_hooks) for m in attention_bridges(model))
        0
    """
    handles = []
    try:
        for module in attention_bridges(model):
            handles.append(module.register_forward_pre_hook(_route, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _route(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    cache = kwargs.get("cache")
    if cache is None or kwargs.get("past_key_values") is not None:
        return None
    return args, {**kwargs, "past_key_values": cache}


def cache_problem(model: Any) -> str | None:
    """Why a KV cache cannot be used on ``model`` (None: it can, and gives the uncached
    logits). Checked once per model on a short left-padded input; the verdict is kept.

    Example:
        >>> import lens
        >>> cache_problem(lens.load_model(lens.models.tiny_config("llama")))
        'a native (boot_native) bridge runs no Hugging Face model and has no KV cache'
    """
    try:
        known = _PROBLEMS.get(model, False)
    except TypeError:
        known = False
    if known is not False:
        return known
    problem = _find_problem(model)
    _PROBLEMS[model] = problem
    return problem


def _find_problem(model: Any) -> str | None:
    hf = hf_model(model)
    if hf is None:
        return "a native (boot_native) bridge runs no Hugging Face model and has no KV cache"
    config = hf.config
    if getattr(config, "is_encoder_decoder", False):
        return "an encoder-decoder model"
    if not attention_bridges(model):
        return "the bridge has no attention components to carry a cache"
    try:
        error = _cached_vs_full(model)
    except Exception as exc:  # noqa: BLE001  (any failure means: no cache here)
        return f"a cached forward failed ({type(exc).__name__}: {exc})"
    scale_tol = 1e-3 if next(model.parameters()).dtype == torch.float32 else 5e-2
    if error > scale_tol:
        return f"cached logits differ from a full forward by {error:.2e} (relative)"
    return None


@torch.no_grad()
def _cached_vs_full(model: Any) -> float:
    """Largest relative logit difference between two cached steps and one full forward, on
    two rows (one left-padded), ids drawn from a fixed generator."""
    device = next(model.parameters()).device
    vocab = int(model.cfg.d_vocab)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, max(4, min(vocab, 1000)), (2, 7), generator=gen).to(device)
    mask = torch.ones_like(tokens)
    mask[1, :2] = 0
    full = model(tokens, attention_mask=mask)
    with cache_routing(model):
        logits, cache = forward_with_cache(model, tokens[:, :5], mask[:, :5], None)
        step1, cache = forward_with_cache(model, tokens[:, 5:6], mask[:, :6], cache)
        step2, cache = forward_with_cache(model, tokens[:, 6:7], mask, cache)
    cached = torch.cat([logits[:, -1:], step1[:, -1:], step2[:, -1:]], dim=1).float()
    want = full[:, 4:7].float()
    return float((cached - want).abs().max() / want.abs().max().clamp_min(1e-6))


@torch.no_grad()
def prefix_cache(model: Any, tokens: Tensor, attention_mask: Tensor) -> Any:
    """The KV cache of one forward over ``tokens`` (a shared prefix), for later forwards
    that continue from it (see :func:`repeat_cache`). Hooks installed now fire on it. Only
    for models whose :func:`cache_problem` is None."""
    with cache_routing(model):
        _, cache = forward_with_cache(model, tokens, attention_mask, None)
    return cache


def repeat_cache(cache: Any, repeats: int) -> Any:
    """A copy of a one-row (or n-row) cache with each row repeated ``repeats`` times.

    Example:
        >>> import torch
        >>> from transformers import DynamicCache
        >>> cache = DynamicCache()
        >>> _ = cache.update(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), 0)
        >>> tuple(repeat_cache(cache, 5).layers[0].keys.shape), cache.layers[0].keys.shape[0]
        ((5, 2, 3, 4), 1)
    """
    out = copy.deepcopy(cache)
    if repeats != 1:
        out.batch_repeat_interleave(repeats)
    return out


def hf_model(model: Any) -> torch.nn.Module | None:
    """The Hugging Face model a bridge runs (None for a native ``boot_native`` bridge, whose
    modules are TransformerLens's own)."""
    underlying = getattr(getattr(model, "_driver", None), "underlying_model", None)
    if underlying is None or not hasattr(underlying, "config"):
        return None
    return underlying


def attention_bridges(model: Any) -> list[torch.nn.Module]:
    """Every attention bridge component of the model (the modules whose forward reads and
    extends a KV cache, under the keyword ``past_key_values``)."""
    from transformer_lens.model_bridge.generalized_components.attention import (  # noqa: PLC0415
        AttentionBridge,
    )

    return [m for m in model.modules() if isinstance(m, AttentionBridge)]


def forward_with_cache(
    model: Any, tokens: Tensor, attention_mask: Tensor | None, cache: Any
) -> tuple[Tensor, Any]:
    """One bridge forward that extends a Hugging Face KV cache: ``(logits, cache)``.
    ``cache`` None starts one; ``attention_mask`` spans the cached columns and ``tokens``
    (None: no padding)."""
    kw: dict[str, Any] = {"attention_mask": attention_mask, "return_type": "logits_and_cache"}
    if cache is not None:
        kw["past_key_values"] = cache
    with warnings.catch_warnings():  # transformers 5 prefers cache=, which the bridge ignores
        warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)
        logits, cache = model(tokens, **kw)
    return logits, cache
