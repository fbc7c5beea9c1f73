"""The embedded default model: a small multilingual Llama trained by lens on a synthetic world
whose ground truth is known exactly. See README.md in this folder.

Example:
    >>> import lens
    >>> from lens import organism
    >>> model = lens.load_model("organism")
    >>> w = organism.world()
    >>> q = organism.fact_queries(w, "ka")[0]
    >>> q.relation, q.pivot_answer
    ('occupation', 'lawyer')
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import torch

from lens.organism.planting import PlantedDirection, PlantedNeurons, plant_direction, plant_neurons
from lens.organism.prompts import (
    FactQuery,
    Request,
    TranslationPair,
    corpus,
    fact_queries,
    relation_prompts,
    requests,
    token_groups,
    token_languages,
    translation_pairs,
)
from lens.organism.tokenizer import add_text_normalizer
from lens.organism.world import Fact, World
from lens.organism.world_build import build_world

SHIPPED = Path(__file__).resolve().parent / "shipped"


def shipped_path() -> Path:
    """Folder of the shipped final model (an HF folder)."""
    if not (SHIPPED / "config.json").is_file():
        raise FileNotFoundError(
            f"the organism is not shipped at {SHIPPED}; train it with "
            "`lens organism train --out DIR` and load DIR instead"
        )
    return SHIPPED


def checkpoints(folder: str | Path | None = None) -> list[int]:
    """Training steps of the intermediate checkpoints, ascending (final model excluded)."""
    root = Path(folder) if folder is not None else shipped_path()
    steps = []
    for p in (root / "checkpoints").glob("step_*"):
        m = re.fullmatch(r"step_(\d+)", p.name)
        if m and (p / "config.json").is_file():
            steps.append(int(m.group(1)))
    return sorted(steps)


def checkpoint_path(checkpoint: int | None = None, folder: str | Path | None = None) -> Path:
    """Folder of the final model (None) or of an intermediate checkpoint.

    ``checkpoint`` is an index into :func:`checkpoints` (0 = earliest, -1 = latest
    intermediate) or a training step listed there.
    """
    root = Path(folder) if folder is not None else shipped_path()
    if checkpoint is None:
        return root
    steps = checkpoints(root)
    if not isinstance(checkpoint, int) or isinstance(checkpoint, bool):
        raise TypeError(f"checkpoint must be an int (index or step), got {checkpoint!r}")
    if checkpoint in steps:
        step = checkpoint
    elif -len(steps) <= checkpoint < len(steps):
        step = steps[checkpoint]
    else:
        raise ValueError(
            f"no checkpoint {checkpoint}: indexes 0..{len(steps) - 1} or steps {steps}"
        )
    return root / "checkpoints" / f"step_{step:05d}"


def load_organism(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    checkpoint: int | None = None,
    folder: str | Path | None = None,
) -> Any:
    """The organism as a TransformerBridge (offline, through ``boot_transformers`` like any HF
    folder). BOS convention: ``model.cfg.default_prepend_bos = True``, so
    ``lens.tokens.batch(model, prompts)`` prepends ``<s>`` exactly like training did.

    Args:
        device: where to put it.
        dtype: parameter dtype (checkpoints are stored in float16 and cast to this).
        checkpoint: None = final model; otherwise see :func:`checkpoint_path`.
        folder: a trained organism folder instead of the shipped one.

    Example:
        >>> model = load_organism()
        >>> model.cfg.n_layers, model.cfg.default_prepend_bos
        (6, True)
    """
    from lens.hf_folder import load_hf_folder

    path = checkpoint_path(checkpoint, folder)
    model = load_hf_folder(path, str(device), dtype, None)
    add_text_normalizer(model.tokenizer)  # natural case and punctuation (tokenizer.py)
    model.cfg.default_prepend_bos = True
    model.eval()
    return model


@functools.lru_cache(maxsize=4)
def _load_world(path: str) -> World:
    return World.load(path)


def world(folder: str | Path | None = None) -> World:
    """The world of the shipped organism (or of a trained ``folder``): its exact ground truth.

    Falls back to ``build_world(seed=0)`` when nothing is shipped.
    """
    root = Path(folder) if folder is not None else SHIPPED
    spec = root / "world.json"
    if spec.is_file():
        return _load_world(str(spec))
    if folder is not None:
        raise FileNotFoundError(f"{spec} not found")
    return build_world(0)


def tokenizer(folder: str | Path | None = None) -> Any:
    """The organism's tokenizer (``transformers`` fast tokenizer) without loading weights."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(Path(folder) if folder else shipped_path()))
    return add_text_normalizer(tok)


__all__ = [
    "Fact",
    "FactQuery",
    "PlantedDirection",
    "PlantedNeurons",
    "Request",
    "TranslationPair",
    "World",
    "build_world",
    "checkpoint_path",
    "checkpoints",
    "corpus",
    "fact_queries",
    "load_organism",
    "plant_direction",
    "plant_neurons",
    "relation_prompts",
    "requests",
    "shipped_path",
    "token_groups",
    "token_languages",
    "tokenizer",
    "translation_pairs",
    "world",
]
