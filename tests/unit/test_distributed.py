"""Two gloo processes on CPU give the same statistics as one process (<= 1e-9), including a
crash and resume under torch.distributed.

The workers are started with torch.multiprocessing's "fork" method where available: a spawned
child re-imports torch and transformer-lens (~6 s of CPU each), a forked one inherits them.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import lens
from lens.stats import ActivationProbability, ExampleMeans, MomentStats, PositionMeans

GROUPS = ["a", "b", "c"]


def make_corpus() -> list[tuple[list[int], str]]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for i in range(27):  # not a multiple of world * batch_size: the last step is uneven
        length = int(torch.randint(2, 8, (1,), generator=gen))
        out.append((torch.randint(3, 250, (length,), generator=gen).tolist(), GROUPS[i % 3]))
    return out


def make_accs(model) -> list:
    return [
        MomentStats.for_model(model, GROUPS),
        ActivationProbability.for_model(model, GROUPS),
        ExampleMeans.for_model(model, GROUPS, max_examples=32),
    ]


def run_all(model, data, checkpoint=None, crash_after=None) -> list:
    accs = make_accs(model)
    means = PositionMeans.for_model(model, GROUPS, n_positions=2)
    items = data if crash_after is None else _crashing(data, crash_after)
    kw = dict(batch_size=4, progress=False, checkpoint=checkpoint, checkpoint_every=1)
    res = lens.collect(model, items, accumulators=accs, **kw)
    accs[0].resumed = res.resumed_examples
    pm_ckpt = None if checkpoint is None else str(checkpoint) + ".pm"
    lens.collect(
        model, data, accumulators=[means], from_end=[-2, -1], **{**kw, "checkpoint": pm_ckpt}
    )
    return [*accs, means]


def _crashing(data, after):
    for i, item in enumerate(data):
        if i == after:
            raise KeyError("simulated crash")
        yield item


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    with gloo_group(rank, world, port):
        model = lens.load_model(lens.tiny_config("llama"))
        data = make_corpus()
        ckpt = os.path.join(out_dir, "ckpt.safetensors")
        try:
            run_all(model, data, checkpoint=ckpt, crash_after=19)
        except KeyError:
            pass  # every rank crashes at the same step; the checkpoint holds 2 steps (16 ex.)
        accs = run_all(model, data, checkpoint=ckpt)
        record = {"resumed": accs[0].resumed}
        lens.stats.save_checkpoint(os.path.join(out_dir, f"rank{rank}.safetensors"), accs, record)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gloo_group(rank: int, world: int, port: int) -> Iterator[None]:
    """Inside a worker: one thread, a gloo process group on localhost, destroyed on exit."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(
        "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60)
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def run_two_processes(worker: Callable[[int, int, int, str], None], out_dir: Path) -> None:
    """``worker(rank, 2, port, out_dir)`` in two processes (forked where available)."""
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(
        worker, args=(2, free_port(), str(out_dir)), nprocs=2, join=True, start_method=method
    )


def test_two_gloo_processes_equal_one(tmp_path):
    run_two_processes(_worker, tmp_path)
    model = lens.load_model(lens.tiny_config("llama"))
    single = run_all(model, make_corpus())
    meta = lens.stats.read_meta(tmp_path / "ckpt.safetensors")
    assert meta["done"] and meta["examples_done"] == 27 and meta["batches_done"] == 7
    for rank in (0, 1):
        got = [*make_accs(model), PositionMeans.for_model(model, GROUPS, n_positions=2)]
        path = tmp_path / f"rank{rank}.safetensors"
        assert lens.stats.read_meta(path)["resumed"] == 16  # resumed after the crash
        lens.stats.load_states(path, got)
        for a, b in zip(single, got):
            for key, x in a.state_dict().items():
                y = b.state_dict()[key]
                if x.is_floating_point():
                    assert torch.allclose(x, y, rtol=0, atol=1e-9), (a.kind, key)
                else:
                    assert torch.equal(x, y), (a.kind, key)
    # the checkpoint rank 0 wrote holds the reduced result as well
    from_ckpt = make_accs(model)
    lens.stats.load_states(tmp_path / "ckpt.safetensors", from_ckpt)
    assert torch.allclose(from_ckpt[0].sum, single[0].sum, rtol=0, atol=1e-9)
