"""Dictionary training in 2 gloo processes equals 1 process within 1e-6."""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import lens
from tests.unit.test_distributed import free_port

KW = dict(
    layer=1,
    n_latents=64,
    k=4,
    batch_size=96,
    buffer_tokens=384,
    steps=4,
    rows_per_forward=4,
    lr=3e-3,
    dead_after_tokens=96,
    seed=1,
)


def _docs():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(3, 250, (32,), generator=g).tolist() for _ in range(40)]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(
        "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60)
    )
    try:
        model = lens.load_model(lens.tiny_config("llama"))
        sae = lens.dictionaries.train(model, _docs(), **KW)
        lens.dictionaries.save(sae, os.path.join(out_dir, f"rank{rank}"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one(tmp_path):
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(
        _worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True, start_method=method
    )
    model = lens.load_model(lens.tiny_config("llama"))
    single = lens.dictionaries.train(model, _docs(), **KW)
    start = lens.dictionaries.random_sae(
        model, site="resid_post", layer=1, n_latents=64, k=4, seed=1
    )
    assert (single.W_dec - start.W_dec).abs().max() > 1e-3  # it trained
    for rank in (0, 1):
        got = lens.dictionaries.load(tmp_path / f"rank{rank}")
        for name, t in single.tensors().items():
            assert torch.allclose(got.tensors()[name], t, rtol=0, atol=1e-6), name
