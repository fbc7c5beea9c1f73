"""Corpus items for ``lens.collect``: ``(text or token ids, group label)`` pairs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lens.stats.accumulators import Label


def labelled(items: Sequence[Any], labels: Sequence[Label] | Label) -> list[tuple[Any, Label]]:
    """Pair every item with its label (one label for all, or one per item).

    Example:
        >>> labelled(["bonjour", "hello"], ["fr", "en"])
        [('bonjour', 'fr'), ('hello', 'en')]
    """
    items = [items] if isinstance(items, str) else list(items)
    if isinstance(labels, (str, int)):
        labels = [labels] * len(items)
    labels = list(labels)
    if len(labels) != len(items):
        raise ValueError(f"{len(labels)} labels for {len(items)} items: give one label per item")
    return list(zip(items, labels))


def check_item(item: Any, index: int) -> tuple[str | list[int], Label]:
    """Validate one corpus item; returns ``(text or token-id list, label)``."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ValueError(
            f"corpus item {index} is {type(item).__name__}, not a (text or tokens, label) pair; "
            "use lens.stats.labelled(texts, labels) to build one"
        )
    x, label = item
    if isinstance(x, Tensor):
        if x.ndim != 1:
            raise ValueError(f"corpus item {index}: token tensor must be 1-D, got {tuple(x.shape)}")
        x = x.tolist()
    if isinstance(x, str):
        if not x:
            raise ValueError(f"corpus item {index} is an empty text")
    elif isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"corpus item {index} has no tokens")
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in x):
            raise ValueError(f"corpus item {index}: token ids must be ints")
        x = list(x)
    else:
        raise ValueError(f"corpus item {index}: expected text or token ids, got {type(x).__name__}")
    if not isinstance(label, (str, int)) or isinstance(label, bool):
        raise ValueError(f"corpus item {index}: label must be str or int, got {label!r}")
    return x, label


def update_hash(h: Any, x: str | list[int], label: Label) -> None:
    """Feed one item into a running hash (text and token ids are told apart)."""
    if isinstance(x, str):
        h.update(b"s" + x.encode() + b"\0")
    else:
        h.update(b"t" + torch.tensor(x, dtype=torch.long).numpy().tobytes() + b"\0")
    h.update(repr(label).encode() + b"\1")


def new_hash() -> Any:
    return hashlib.sha256()
