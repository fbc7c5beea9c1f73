"""Refusal flags: greedy replies scored against refusal phrases (shared by the baseline gate
and the study's measurements)."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from lens.generate import greedy_tokens


def refusal_flags(
    model: Any,
    prompts: list[str],
    phrases: list[list[int]] | list[list[list[int]]],
    *,
    interventions: list[Any] | tuple[Any, ...] = (),
    batch_size: int = 64,
    min_tokens: int = 1,
) -> tuple[list[bool], list[bool], Tensor]:
    """Greedy replies of ``prompts`` (under ``interventions``) scored against each prompt's
    refusal phrase (token ids) or phrases (a list of them): (starts with a whole phrase,
    starts with a phrase's first token, reply ids).

    Replies are as long as the longest phrase (at least ``min_tokens``); EOS does not stop
    them (only prefixes count).
    """
    options = [
        [cast(list[int], p)] if p and isinstance(p[0], int) else cast(list[list[int]], p)
        for p in phrases
    ]
    width = max(min_tokens, max(len(p) for ps in options for p in ps))
    ids = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        ids.append(
            greedy_tokens(
                model,
                chunk,
                max_new_tokens=width,
                interventions=list(interventions),
                stop_at_eos=False,
            )
        )
    reply = torch.cat(ids).cpu()
    whole = [any(reply[i, : len(p)].tolist() == p for p in ps) for i, ps in enumerate(options)]
    first = [any(int(reply[i, 0]) == p[0] for p in ps) for i, ps in enumerate(options)]
    return whole, first, reply
