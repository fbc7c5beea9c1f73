"""Atomic training checkpoints of a tuned lens (safetensors + a JSON record, no pickle).

Same approach as :mod:`lens.stats.checkpoint`: the file is written to a temporary file in the
same folder, flushed to disk, then renamed over the old one (``os.replace``), so an
interruption leaves the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

FORMAT = "lens.tuned_lens.train/1"
_META_KEY = "lens"


def save_state(path: str | os.PathLike, tensors: dict[str, Tensor], record: dict[str, Any]):
    """Write ``tensors`` and ``record`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"format": FORMAT, **record})
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: t.contiguous() for k, t in tensors.items()}, tmp, {_META_KEY: meta})
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_state(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """``(tensors, record)`` of a checkpoint, or None when ``path`` does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a tuned-lens training checkpoint: {exc}") from exc
    record = json.loads(raw) if raw else None
    if not record or record.get("format") != FORMAT:
        raise ValueError(f"{path} is not a tuned-lens training checkpoint ({FORMAT})")
    return tensors, record
