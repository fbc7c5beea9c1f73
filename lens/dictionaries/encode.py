"""Reading a dictionary's site from a model, and encoding it (streamed, read-only)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interventions.dictionary import SAE
from lens.early_stop import StoppingProbe, forward_until
from lens.hooks import Probe, apply, hook_points_after
from lens.tokens import Batch
from lens.tokens import batch as make_batch


@torch.no_grad()
def read_sites(
    model: Any, b: Batch, hooks: Sequence[str], layer: int, *, interventions: Sequence[Any] = ()
) -> list[Float[Tensor, "batch pos d"]]:
    """The activations at ``hooks`` (all in block ``layer``, in forward order) for batch ``b``;
    the forward stops after the last one unless someone else's hook sits later."""
    probes: list[Probe] = [Probe(h) for h in hooks[:-1]]
    stop = StoppingProbe(hooks[-1])
    later = hook_points_after(model, layer, same_block=True)
    with apply(model, *interventions, probes=[*probes, stop]) as handle:
        forward_until(model, stop, later, handle, b.tokens, attention_mask=b.attention_mask)
    out = []
    for p in [*probes, stop]:
        v = p.value
        out.append(v.flatten(-2) if v.ndim == 4 else v)
    return out


@dataclass
class TokenActivations:
    """One prompt's feature activations: ``acts[i]`` belongs to ``tokens[i]`` (real tokens
    only, BOS included when it was added); ``hook`` is where they were read."""

    index: int
    tokens: Int[Tensor, " n"]
    acts: Float[Tensor, "n d_sae"]
    hook: str


def _chunks(prompts: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for p in prompts:
        chunk.append(p)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def encode(
    model: Any,
    sae: SAE,
    prompts: Iterable[Any],
    *,
    batch_size: int = 8,
    interventions: Sequence[Any] = (),
    prepend_bos: bool | None = None,
) -> Iterator[TokenActivations]:
    """Feature activations of every real token of every prompt, one prompt at a time
    (streamed: one batch is held at once; nothing is spliced into the forward).

    Args:
        model: a TransformerBridge the dictionary fits (checked: layer and width).
        sae: the dictionary.
        prompts: texts or token-id lists (any iterable).
        batch_size: prompts per forward.
        interventions: installed during each forward (read before the dictionary's site).
        prepend_bos: passed to :func:`lens.tokens.batch`.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("gpt2"))
        >>> sae = lens.dictionaries.random_sae(model, site="resid_pre", layer=1, n_latents=64, k=2)
        >>> [tuple(a.acts.shape) for a in encode(model, sae, [[1, 2], [3, 4, 5]])]
        [(2, 64), (3, 64)]
    """
    sae.check(model)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    index = 0
    for chunk in _chunks(prompts, batch_size):
        b = make_batch(model, chunk, padding_side="right", prepend_bos=prepend_bos)
        (x,) = read_sites(model, b, [sae.in_hook], sae.layer, interventions=interventions)
        feats = sae.encode(x)
        for row in range(len(chunk)):
            n = int(b.attention_mask[row].sum())
            yield TokenActivations(
                index, b.tokens[row, :n].cpu(), feats[row, :n].cpu(), sae.in_hook
            )
            index += 1
