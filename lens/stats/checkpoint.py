"""Atomic checkpoints of accumulator states (safetensors + JSON metadata, no pickle).

One file holds every accumulator's state tensors (keys ``"{i}.{field}"``) and, in the
safetensors metadata, a JSON record: the run's fingerprint, how many examples and batches
are done, a hash of the corpus prefix consumed so far, and whether the run finished. It is
written to a temporary file in the same folder, flushed, then renamed over the old one
(``os.replace``), so a crash leaves either the old or the new checkpoint, never half of one.

Every file also stores a sha256 of its tensors (names, dtypes, shapes and bytes), checked
when the tensors are loaded: flipped bits raise :class:`CheckpointError` naming the file
instead of resuming into wrong statistics. The generic layer (:func:`save_tensors`,
:func:`load_tensors`, :func:`read_tensor_meta`) serves any lens checkpoint of named tensors
plus a JSON record; the accumulator functions below build on it.
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
_CHECKSUM_KEY = "sha256"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be trusted (corrupt, incomplete or of another kind)."""


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and raw bytes of ``tensors`` (sorted by name).

    Example:
        >>> a = tensors_sha256({"x": torch.zeros(3)})
        >>> a == tensors_sha256({"x": torch.zeros(3)}), a == tensors_sha256({"x": torch.ones(3)})
        (True, False)
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any], kind: str
) -> None:
    """Write named tensors and a JSON record atomically, with a checksum of the tensors.

    Args:
        path: the ``.safetensors`` file (its folder is created).
        tensors: name -> tensor (moved to CPU, made contiguous).
        meta: JSON-safe record, returned by :func:`read_tensor_meta` / :func:`load_tensors`.
        kind: format tag, e.g. ``"lens.tuned_lens/1"``; loading checks it.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/state.safetensors"
        >>> save_tensors(path, {"w": torch.eye(2)}, {"step": 3}, kind="demo/1")
        >>> tensors, meta = load_tensors(path, kind="demo/1")
        >>> meta["step"], torch.equal(tensors["w"], torch.eye(2))
        (3, True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    record = {**meta, "format": kind, _CHECKSUM_KEY: tensors_sha256(tensors)}
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


def read_tensor_meta(path: str | os.PathLike, kind: str) -> dict[str, Any] | None:
    """The JSON record of a checkpoint written by :func:`save_tensors` (None when ``path``
    does not exist). Reads only the header; the checksum is checked by :func:`load_tensors`."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(
            f"{path} is corrupt or incomplete ({exc}): delete it and run again"
        ) from exc
    try:
        record = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        record = None
    if not record or record.get("format") != kind:
        raise CheckpointError(f"{path} is not a {kind} checkpoint: delete it or pass another path")
    return record


def load_tensors(
    path: str | os.PathLike, kind: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and JSON record of a checkpoint written by :func:`save_tensors`, after
    checking the tensors against the stored sha256 (:class:`CheckpointError` on mismatch)."""
    record = read_tensor_meta(path, kind)
    if record is None:
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(
            f"{path} is corrupt or incomplete ({exc}): delete it and run again"
        ) from exc
    stored = record.get(_CHECKSUM_KEY)
    if stored is None:
        raise CheckpointError(
            f"{path} has no checksum (written by an older lens): delete it and run again"
        )
    if tensors_sha256(tensors) != stored:
        raise CheckpointError(
            f"{path} is corrupt: its tensor data does not match the checksum stored with it; "
            "delete it and run again"
        )
    return tensors, record


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
    fields = ("n_layers", "d_model", "d_mlp", "d_vocab", "n_heads")  # not model_name: a path
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
    """Write the accumulators' states and ``meta`` to ``path`` atomically (with checksum)."""
    tensors = {
        f"{i}.{name}": t
        for i, acc in enumerate(accumulators)
        for name, t in acc.state_dict().items()
    }
    record = {**meta, "accumulators": [a.config() for a in accumulators]}
    save_tensors(path, tensors, record, kind=FORMAT)


def read_meta(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON record of a checkpoint, or None when ``path`` does not exist."""
    return read_tensor_meta(path, FORMAT)


def load_states(path: str | os.PathLike, accumulators: Sequence[Accumulator]) -> None:
    """Load the states saved in ``path`` into ``accumulators`` (same order and layouts),
    after checking the file's checksum."""
    tensors, record = load_tensors(path, FORMAT)
    configs = [a.config() for a in accumulators]
    if record["accumulators"] != configs:
        raise ValueError(f"{path} holds accumulators {record['accumulators']}, not {configs}")
    for i, acc in enumerate(accumulators):
        prefix = f"{i}."
        acc.load_state_dict(
            {k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)}
        )
