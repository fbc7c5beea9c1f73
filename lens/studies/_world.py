"""Helpers the studies share: find the organism world that belongs to a model, name a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def model_world(model: Any) -> Any:
    """The organism :class:`~lens.organism.World` whose vocabulary is exactly the model's
    tokenizer, or None when the model is not an organism.

    The world is read from the tokenizer's folder (``world.json`` next to it: the shipped
    organism, a checkpoint, or a trained folder), else the shipped/default world.

    Example:
        >>> import lens
        >>> model_world(lens.load_model(lens.tiny_config("llama"))) is None
        True
    """
    from lens import organism

    tok = getattr(model, "tokenizer", None)
    if tok is None or not hasattr(tok, "get_vocab"):
        return None
    folder = Path(str(getattr(tok, "name_or_path", "") or ""))
    try:
        if str(folder) and (folder / "world.json").is_file():
            world = organism.world(folder)
        else:
            world = organism.world()
    except (OSError, ValueError):
        return None
    vocab = tok.get_vocab()
    words = world.vocabulary()
    if len(vocab) != len(words) + 4 or not all(w in vocab for w in words):
        return None
    return world


def model_label(model: Any) -> str:
    """A short name for reports: the model's folder or config name."""
    name = getattr(model.cfg, "model_name", None)
    if not name:
        return type(model).__name__
    path = Path(str(name))
    shipped = Path(__file__).resolve().parents[1] / "organism" / "shipped"
    if path.resolve() == shipped.resolve():
        return "organism"
    return str(name)


def split(items: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Shuffle ``items`` with ``seed``; return (first ``round(fraction * n)`` (at least 1 and
    at most n - 1), the rest)."""
    import random

    if len(items) < 2:
        raise ValueError(f"need at least two items to split, got {len(items)}")
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    n = min(max(round(fraction * len(shuffled)), 1), len(shuffled) - 1)
    return shuffled[:n], shuffled[n:]
