"""Atomic checkpoints of accumulator states (safetensors + JSON metadata, no pickle).

One file holds every accumulator's state tensors (keys ``"{i}.{field}"``) and, in the
safetensors metadata, a JSON record: the run's fingerprint, how many examples and batches
are done, a hash of the corpus prefix consumed so far, and whether the run finished. It is
written to a temporary file in the same folder, flushed, then renamed over the old one
(``os.replace``), so a crash leaves either the old or the new checkpoint, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lens.stats.accumulators import Accumulator

FORMAT = "lens.collect/1"
_META_KEY = "lens"


def digest(obj: Any) -> str:
    """Short sha256 of a JSON-serialisable object (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@torch.no_grad()
def model_fingerprint(model: Any) -> str:
    """Cheap identity of a model: config fields, parameter names/shapes/dtypes, and the
    float64 sum and L2 norm of every parameter (catches any real edit of the weights
    without hashing gigabytes)."""
    cfg = model.cfg
    fields = ("n_layers", "d_model", "d_mlp", "d_vocab", "n_heads", "model_name")
    parts: list[Any] = [[f, str(getattr(cfg, f, None))] for f in fields]
    for name, p in model.named_parameters():
        x = p.detach()
        total = float(x.sum(dtype=torch.float64))
        norm = float(torch.linalg.vector_norm(x, dtype=torch.float64))
        parts.append([name, list(p.shape), str(p.dtype), total, norm])
    return digest(parts)


def save_checkpoint(
    path: str | os.PathLike, accumulators: Sequence[Accumulator], meta: dict[str, Any]
) -> None:
    """Write the accumulators' states and ``meta`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"{i}.{name}": t.contiguous()
        for i, acc in enumerate(accumulators)
        for name, t in acc.state_dict().items()
    }
    record = {"format": FORMAT, **meta, "accumulators": [a.config() for a in accumulators]}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={_META_KEY: json.dumps(record)})
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_meta(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON record of a checkpoint, or None when ``path`` does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a lens.collect checkpoint: {exc}") from exc
    record = json.loads(raw) if raw else None
    if not record or record.get("format") != FORMAT:
        raise ValueError(f"{path} is not a lens.collect checkpoint ({FORMAT})")
    return record


def load_states(path: str | os.PathLike, accumulators: Sequence[Accumulator]) -> None:
    """Load the states saved in ``path`` into ``accumulators`` (same order and layouts)."""
    record = read_meta(path)
    if record is None:
        raise FileNotFoundError(path)
    configs = [a.config() for a in accumulators]
    if record["accumulators"] != configs:
        raise ValueError(f"{path} holds accumulators {record['accumulators']}, not {configs}")
    with safe_open(str(path), framework="pt") as fh:
        for i, acc in enumerate(accumulators):
            prefix = f"{i}."
            acc.load_state_dict(
                {k[len(prefix) :]: fh.get_tensor(k) for k in fh.keys() if k.startswith(prefix)}
            )
