"""The generation loop: one prefill, then one forward per new token over a KV cache (or, where
the cache cannot be made correct, a re-run of the whole prefix per token, with a warning)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from interventions.base import generating
from lens.generate.cache import cache_problem, cache_routing, forward_with_cache
from lens.generate.sampling import Sampling
from lens.hooks import Probe, apply
from lens.tokens import Batch, as_batch

Stream = Callable[[int, str], None]
"""``stream(row, text)``: called with each new piece of a row's decoded continuation."""


class NoCacheWarning(UserWarning):
    """Generation ran without a KV cache (each step re-ran the prefix); the message says why."""


@dataclass
class Generation:
    """What one batched generation produced.

    Attributes:
        tokens: ``[batch, new]`` generated ids; a row that emitted EOS repeats it afterwards.
        lengths: generated tokens per row, its EOS included.
        prompt: the left-padded prompt batch (column ``prompt.tokens.shape[1] + i`` holds
            generated token ``i``; positions ``"prompt"``/``"generated"`` split there).
        cached: whether a KV cache was used.
        no_cache_reason: why not, when it was not.
    """

    tokens: Int[Tensor, "batch new"]
    lengths: Int[Tensor, " batch"]
    prompt: Batch
    cached: bool
    no_cache_reason: str | None = None

    def texts(self, model: Any) -> list[str]:
        """Each row's continuation as text, up to its EOS, special tokens dropped."""
        rows = [row[:n] for row, n in zip(self.tokens.tolist(), self.lengths.tolist())]
        return [model.tokenizer.decode(r, skip_special_tokens=True) for r in rows]


def check_new_tokens(max_new_tokens: int) -> None:
    """Refuse a ``max_new_tokens`` that is not a positive integer."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise TypeError(f"max_new_tokens must be an integer, got {max_new_tokens!r}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")


def check_context(model: Any, max_new_tokens: int, width: int) -> None:
    """Refuse a generation that would run past the model's context."""
    n_ctx = getattr(model.cfg, "n_ctx", None)
    if n_ctx and width + max_new_tokens > n_ctx:
        raise ValueError(
            f"the padded prompt ({width} tokens) plus max_new_tokens ({max_new_tokens}) exceeds "
            f"the model's context of {n_ctx} tokens; lower max_new_tokens to "
            f"{max(n_ctx - width, 0)} or shorten the prompts"
        )


def use_cache_for(model: Any, use_cache: bool | None) -> tuple[bool, str | None]:
    """Whether to generate with a KV cache, and why not when not (see ``generate_tokens``)."""
    if use_cache is False:
        return False, "use_cache=False was passed"
    problem = cache_problem(model)
    if problem is None:
        return True, None
    if use_cache:
        raise ValueError(f"use_cache=True, but this model cannot use a KV cache: {problem}")
    warnings.warn(
        f"lens.generate: no KV cache for this model ({problem}); each new token re-runs the "
        "whole prefix instead",
        NoCacheWarning,
        stacklevel=3,
    )
    return False, problem


@torch.no_grad()
def generate_tokens(
    model: Any,
    prompts: Sequence[str] | Sequence[Sequence[int]] | Batch,
    *,
    max_new_tokens: int = 20,
    interventions: Sequence[Any] = (),
    probes: Sequence[Probe] = (),
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    stop_at_eos: bool = True,
    use_cache: bool | None = None,
    stream: Stream | None = None,
    generator: torch.Generator | None = None,
) -> Generation:
    """Continue a batch of prompts (left padded) under ``interventions``, reading ``probes``.

    A KV cache is used when it gives the uncached logits on this model (checked once per
    model); otherwise each step re-runs the prefix and a :class:`NoCacheWarning` says why.
    ``use_cache=False`` forces the uncached loop, ``use_cache=True`` refuses to fall back.
    Interventions run on every forward, prefill and steps alike; their positions are columns
    of the whole sequence (``"prompt"``, ``"generated"`` or ``"all"`` for both; see
    ``interventions.base.Positions``), and the cache holds the keys/values they produced, so
    cached and uncached runs agree. ``"last"`` means each forward's last token: a cached step
    edits each token once, when it is new, where an uncached re-run edits only the newest.
    A :class:`~lens.hooks.Probe` at ``positions="last"`` captures one ``[batch, ...]`` value
    per generated token (the state that predicted it): ``torch.stack(probe.values, 1)``.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.models.tiny_config("llama"))
        >>> out = lens.generate.generate_tokens(model, [[1, 2, 3]], max_new_tokens=2,
        ...                                     use_cache=False)
        >>> out.tokens.shape, out.cached
        (torch.Size([1, 2]), False)
    """
    sampling = Sampling(do_sample, temperature, top_k, top_p, seed)
    check_new_tokens(max_new_tokens)
    b = as_batch(model, prompts, padding_side="left")
    if b.padding_side != "left":
        raise ValueError("generation needs a left-padded batch (lens.tokens.batch(model, prompts))")
    check_context(model, max_new_tokens, b.tokens.shape[1])
    cached, reason = use_cache_for(model, use_cache)
    if generator is None:
        generator = sampling.generator(b.tokens.device)
    routing = cache_routing(model) if cached else nullcontext()
    with apply(model, *interventions, probes=probes), generating(model, b.tokens.shape[1]):
        with routing:
            tokens, lengths = _loop(
                model, b, max_new_tokens, sampling, generator, cached, stop_at_eos, stream
            )
    return Generation(tokens, lengths, b, cached, reason)


def _loop(
    model: Any,
    b: Batch,
    steps: int,
    sampling: Sampling,
    generator: torch.Generator | None,
    cached: bool,
    stop_at_eos: bool,
    stream: Stream | None,
) -> tuple[Tensor, Tensor]:
    tokens, mask = b.tokens, b.attention_mask
    eos = getattr(getattr(model, "tokenizer", None), "eos_token_id", None)
    stop = stop_at_eos and eos is not None
    eos_id = int(eos) if eos is not None else -1
    done = torch.zeros(len(b), dtype=torch.bool, device=tokens.device)
    lengths = torch.zeros(len(b), dtype=torch.long, device=tokens.device)
    decoder = _StreamDecoder(model, len(b), stream) if stream is not None else None
    new: list[Tensor] = []
    cache = None
    for _ in range(steps):
        if cached:
            step = tokens if cache is None else tokens[:, -1:]
            logits, cache = forward_with_cache(model, step, mask, cache)
        else:
            logits = model(tokens, attention_mask=mask)
        nxt = sampling.pick(logits[:, -1], generator)
        if stop:
            nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
        lengths += (~done).long()
        if stop:
            done |= nxt == eos_id
        new.append(nxt)
        if decoder is not None:
            decoder.push(nxt, done)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        if stop and bool(done.all()):
            break
    return torch.stack(new, dim=1).cpu(), lengths.cpu()


class _StreamDecoder:
    """Decodes each row's continuation so far and passes on the text it adds."""

    def __init__(self, model: Any, rows: int, stream: Stream) -> None:
        self.tokenizer = model.tokenizer
        self.stream = stream
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.sent = [""] * rows
        self.finished = [False] * rows

    def push(self, nxt: Tensor, done: Tensor) -> None:
        for row, (token, row_done) in enumerate(zip(nxt.tolist(), done.tolist())):
            if self.finished[row]:
                continue
            self.ids[row].append(token)
            self.finished[row] = bool(row_done)
            text = self.tokenizer.decode(self.ids[row], skip_special_tokens=True)
            if text.startswith(self.sent[row]) and len(text) > len(self.sent[row]):
                piece, self.sent[row] = text[len(self.sent[row]) :], text
                self.stream(row, piece)
