"""Small torch.distributed helpers: rank/world, sum-reduce, variable-length gather, and a
JSON broadcast (no pickle). Every helper is a no-op in a single process (torch.distributed not
initialised, or a world of one), so the same code runs with and without torchrun.

Tensors on CUDA are reduced through the CPU when the group's backend is gloo.
"""

from __future__ import annotations

import json
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed(group: Any = None) -> bool:
    """True when torch.distributed is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def rank(group: Any = None) -> int:
    """This process's rank in ``group`` (0 when not distributed)."""
    return dist.get_rank(group) if dist.is_available() and dist.is_initialized() else 0


def world_size(group: Any = None) -> int:
    """Number of processes in ``group`` (1 when not distributed)."""
    return dist.get_world_size(group) if dist.is_available() and dist.is_initialized() else 1


def _via_cpu(t: Tensor, group: Any) -> bool:
    return t.is_cuda and dist.get_backend(group) == "gloo"


def all_reduce_sum(t: Tensor, group: Any = None) -> Tensor:
    """Sum ``t`` over the processes (in place when possible); returns the reduced tensor.

    Example:
        >>> import torch
        >>> all_reduce_sum(torch.ones(2)).tolist()   # single process: unchanged
        [1.0, 1.0]
    """
    if not is_distributed(group):
        return t
    work = t.cpu() if _via_cpu(t, group) else t
    dist.all_reduce(work, op=dist.ReduceOp.SUM, group=group)
    return work.to(t.device) if work is not t else t


def all_gather_rows(t: Tensor, group: Any = None) -> Tensor:
    """Concatenate every process's ``t`` (same shape except the first dim) in rank order."""
    if not is_distributed(group):
        return t
    device = t.device
    work = t.cpu() if _via_cpu(t, group) else t
    n = torch.tensor([work.shape[0]], dtype=torch.long, device=work.device)
    sizes = [torch.zeros_like(n) for _ in range(world_size(group))]
    dist.all_gather(sizes, n, group=group)
    longest = max(int(s.item()) for s in sizes)
    padded = work.new_zeros((longest, *work.shape[1:]))
    padded[: work.shape[0]] = work
    parts = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous(), group=group)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)]).to(device)


def broadcast_json(obj: Any, group: Any = None, src: int = 0) -> Any:
    """Send a JSON-serialisable object from rank ``src`` to every process; returns it."""
    if not is_distributed(group):
        return obj
    backend_cuda = dist.get_backend(group) == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if backend_cuda else "cpu"
    if rank(group) == src:
        data = torch.tensor(list(json.dumps(obj).encode()), dtype=torch.uint8, device=device)
        size = torch.tensor([data.numel()], dtype=torch.long, device=device)
    else:
        size = torch.zeros(1, dtype=torch.long, device=device)
    dist.broadcast(size, src=src, group=group)
    if rank(group) != src:
        data = torch.zeros(int(size.item()), dtype=torch.uint8, device=device)
    dist.broadcast(data, src=src, group=group)
    return json.loads(bytes(data.cpu().tolist()).decode())


def barrier(group: Any = None) -> None:
    """Wait for every process (no-op when not distributed)."""
    if is_distributed(group):
        dist.barrier(group=group)
