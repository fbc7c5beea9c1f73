"""Choosing the next token: greedy, or sampled with temperature, top-k and top-p.

The filters run in the order transformers applies them (temperature, then top-k, then
top-p, at least one token kept), and the draw is one ``torch.multinomial`` per step from the
given generator, so a seeded run is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen.

    Args:
        do_sample: False: the most likely token (greedy). True: draw from the distribution
            shaped by the other fields.
        temperature: logits are divided by it (> 0; sampling only).
        top_k: keep the k most likely tokens (>= 1; None: all).
        top_p: keep the smallest set of most likely tokens whose probability reaches p
            (0 < p <= 1; None: all).
        seed: seed of the generator the draws come from (None: torch's global generator).

    Example:
        >>> Sampling(do_sample=True, temperature=0.0)
        Traceback (most recent call last):
        ...
        ValueError: temperature must be > 0 when sampling, got 0.0 (for greedy decoding pass do_sample=False)
    """  # noqa: E501

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.do_sample:
            changed = [
                name
                for name, value, default in (
                    ("temperature", self.temperature, 1.0),
                    ("top_k", self.top_k, None),
                    ("top_p", self.top_p, None),
                    ("seed", self.seed, None),
                )
                if value != default
            ]
            if changed:
                raise ValueError(
                    f"{', '.join(changed)} only apply when sampling: pass do_sample=True, or drop "
                    "them for greedy decoding"
                )
            return
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise ValueError(
                f"temperature must be > 0 when sampling, got {t!r} (for greedy decoding pass "
                "do_sample=False)"
            )
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise ValueError(f"top_k must be an integer >= 1 (or None for all), got {self.top_k!r}")
        p = self.top_p
        if p is not None and (not isinstance(p, (int, float)) or not 0 < p <= 1):
            raise ValueError(f"top_p must be in (0, 1] (or None for all), got {p!r}")

    def generator(self, device: torch.device) -> torch.Generator | None:
        """A generator seeded with ``seed`` on ``device`` (None: use torch's global one)."""
        if self.seed is None:
            return None
        return torch.Generator(device=device).manual_seed(self.seed)

    def pick(
        self, logits: Float[Tensor, "batch vocab"], generator: torch.Generator | None = None
    ) -> Int[Tensor, " batch"]:
        """The next token of each row.

        Example:
            >>> import torch
            >>> Sampling().pick(torch.tensor([[0.0, 2.0, 1.0]])).tolist()
            [1]
            >>> Sampling(do_sample=True, top_k=1, seed=0).pick(torch.tensor([[0.0, 2.0, 1.0]])).tolist()
            [1]
        """  # noqa: E501
        if not self.do_sample:
            return logits.argmax(-1)
        scores = filter_logits(
            logits.float(), temperature=self.temperature, top_k=self.top_k, top_p=self.top_p
        )
        probs = torch.softmax(scores, dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)


def filter_logits(
    logits: Float[Tensor, "batch vocab"],
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Float[Tensor, "batch vocab"]:
    """Logits divided by ``temperature``, with tokens outside top-k / top-p set to -inf.

    Example:
        >>> import torch
        >>> filter_logits(torch.tensor([[1.0, 3.0, 2.0]]), top_k=2).tolist()
        [[-inf, 3.0, 2.0]]
    """
    scores = logits / temperature
    if top_k is not None and top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        ascending, order = torch.sort(scores, dim=-1)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - top_p)
        drop[..., -1] = False  # the most likely token always stays
        scores = scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return scores
