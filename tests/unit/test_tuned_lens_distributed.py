"""Tuned-lens training in 2 gloo processes equals 1 process within 1e-6, including a resume
from a checkpoint written under torch.distributed."""

from __future__ import annotations

import os

import torch

import lens
from lens.tuned_lens import training
from tests.unit.test_distributed import gloo_group, run_two_processes
from tests.unit.test_tuned_lens import corpus

KW = dict(steps=5, tokens_per_step=96, progress=False, seed=1)


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    with gloo_group(rank, world, port):
        model = lens.load_model(lens.tiny_config("llama"))
        ckpt = os.path.join(out_dir, "train.safetensors")
        real_step, calls = training._step, {"n": 0}

        def crash_on_fourth(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 4:  # every rank stops at the same step, before any collective
                raise KeyboardInterrupt("simulated interruption")
            return real_step(*args, **kwargs)

        training._step = crash_on_fourth
        try:
            lens.tuned_lens.train(model, corpus(), checkpoint=ckpt, checkpoint_every=2, **KW)
        except KeyboardInterrupt:
            pass
        finally:
            training._step = real_step
        assert calls["n"] == 4
        tl = lens.tuned_lens.train(model, corpus(), checkpoint=ckpt, checkpoint_every=2, **KW)
        assert tl.record["processes"] == 2
        tl.save(os.path.join(out_dir, f"rank{rank}"))


def test_two_gloo_processes_equal_one(tmp_path):
    run_two_processes(_worker, tmp_path)
    model = lens.load_model(lens.tiny_config("llama"))
    single = lens.tuned_lens.train(model, corpus(), **KW)
    assert not torch.equal(single.maps[0].weight, torch.eye(model.cfg.d_model))
    for rank in (0, 1):
        got = lens.tuned_lens.load(tmp_path / f"rank{rank}")
        assert got.record["tokens"] == single.record["tokens"]
        for a, b in zip(single.maps, got.maps):
            assert torch.allclose(a.weight, b.weight, rtol=0, atol=1e-6)
            assert torch.allclose(a.bias, b.bias, rtol=0, atol=1e-6)
    other = lens.tuned_lens.train(model, corpus(), **{**KW, "seed": 2})  # another data order
    assert not torch.allclose(other.maps[0].weight, single.maps[0].weight, rtol=0, atol=1e-6)
