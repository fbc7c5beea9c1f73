"""Loading a local Hugging Face folder as a TransformerBridge, offline: the one loader that
``lens.load_model`` and the organism share (kept apart from :mod:`lens.models` so that the
organism does not import the dispatcher that imports it)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from lens.sources import ModelLoadError


@contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar while lens loads a model (lens's own
    progress bars then render cleanly); restores the previous setting."""
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _supported_architectures() -> set[str]:
    from transformer_lens.factories.architecture_adapter_factory import (
        SUPPORTED_ARCHITECTURES,
    )

    return set(SUPPORTED_ARCHITECTURES)


@quiet_weight_loading()
def load_hf_folder(
    folder: str | Path, device: str | None, dtype: torch.dtype, tokenizer: Any, **placement: Any
) -> Any:
    """``boot_transformers`` on a local folder, fully offline, after checking it is usable.
    ``placement``: ``device_map`` / ``max_memory``, passed through (then ``device`` is None)."""
    folder = Path(folder)
    config = folder / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"{folder} has no config.json, so it is not a Hugging Face folder")
    arch = (json.loads(config.read_text()).get("architectures") or [None])[0]
    supported = _supported_architectures()
    if arch not in supported:
        raise ModelLoadError(
            f"{folder}: architecture {arch!r} is not supported by TransformerLens "
            f"(e.g. {sorted(a for a in supported if a.endswith('ForCausalLM'))[:8]}...)"
        )
    with hub_offline():  # a local folder never needs the network
        return TransformerBridge.boot_transformers(
            str(folder), device=device, dtype=dtype, tokenizer=tokenizer, **placement
        )


@contextmanager
def hub_offline() -> Iterator[None]:
    """Set ``HF_HUB_OFFLINE=1`` for the block; restore the previous value (or absence) after."""
    prev = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if prev is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = prev
