"""Generation through a TransformerBridge, with a KV cache, under interventions and probes.

TransformerLens 4.3's own cached ``generate()`` writes wrong text on transformers 5 models
(the decoder layers pass the cache as ``cache=``, the bridge's attention reads
``past_key_values=``, so the cache is never extended). lens routes the cache to the name the
bridge reads (:mod:`lens.generate.cache`), checks once per model that cached logits equal a
full forward, and otherwise re-runs the prefix each step with a :class:`NoCacheWarning`.

* :func:`generate_tokens`: the general entry (sampling, probes, streaming) -> :class:`Generation`.
* :func:`greedy_tokens`: greedy ids ``[batch, new]`` (what studies score).
* :func:`generate`: continuations as text, in batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from lens.generate.cache import cache_problem, cache_routing
from lens.generate.loop import Generation, NoCacheWarning, Stream, generate_tokens
from lens.generate.sampling import Sampling, filter_logits
from lens.tokens import Batch

__all__ = [
    "Generation",
    "NoCacheWarning",
    "Sampling",
    "Stream",
    "cache_problem",
    "cache_routing",
    "filter_logits",
    "generate",
    "generate_tokens",
    "greedy_tokens",
]


def greedy_tokens(
    model: Any,
    prompts: Sequence[str] | Sequence[Sequence[int]] | Batch,
    *,
    max_new_tokens: int = 20,
    interventions: Sequence[Any] = (),
    stop_at_eos: bool = True,
    use_cache: bool | None = None,
) -> Int[Tensor, "batch new"]:
    """Greedy continuation ids for a batch (left padded). Rows that hit EOS keep
    emitting EOS afterwards. Runs under ``interventions`` when given.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.models.tiny_config("llama"))
        >>> lens.generate.greedy_tokens(model, [[1, 2, 3], [4]], max_new_tokens=2,
        ...                             use_cache=False).shape
        torch.Size([2, 2])
    """
    return generate_tokens(
        model,
        prompts,
        max_new_tokens=max_new_tokens,
        interventions=interventions,
        stop_at_eos=stop_at_eos,
        use_cache=use_cache,
    ).tokens


def generate(
    model: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 20,
    interventions: Sequence[Any] = (),
    batch_size: int = 32,
    progress: bool = False,
    stop_at_eos: bool = True,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    use_cache: bool | None = None,
) -> list[str]:
    """Continuations as text (the prompt excluded, up to each row's EOS, special tokens
    dropped), ``batch_size`` prompts per batch; sampling as in :func:`generate_tokens`, one
    generator (seeded by ``seed``) across batches.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.models.tiny_config("llama"))
        >>> model.tokenizer is None  # a random model has no tokenizer: pass ids instead
        True
    """
    sampling = Sampling(do_sample, temperature, top_k, top_p, seed)
    generator = sampling.generator(next(model.parameters()).device)
    out: list[str] = []
    starts = range(0, len(prompts), batch_size)
    for start in tqdm(starts, desc="generate", disable=not progress):
        chunk = list(prompts[start : start + batch_size])
        result = generate_tokens(
            model,
            chunk,
            max_new_tokens=max_new_tokens,
            interventions=interventions,
            stop_at_eos=stop_at_eos,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            use_cache=use_cache,
            generator=generator,
        )
        out.extend(result.texts(model))
    return out
