"""Dictionary training in 2 gloo processes equals 1 process within 1e-6."""

from __future__ import annotations

import os

import torch

import lens
from tests.unit.test_distributed import gloo_group, run_two_processes

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
    with gloo_group(rank, world, port):
        model = lens.load_model(lens.tiny_config("llama"))
        sae = lens.dictionaries.train(model, _docs(), **KW)
        lens.dictionaries.save(sae, os.path.join(out_dir, f"rank{rank}"))


def test_two_gloo_processes_equal_one(tmp_path):
    run_two_processes(_worker, tmp_path)
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
