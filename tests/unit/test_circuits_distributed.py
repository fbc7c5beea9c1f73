"""lens.circuits.attribute under torch.distributed: two gloo processes, each scoring its share
of the chunks of pairs, return the same graph as one process (1e-6), per pair and per
position included, for EAP-IG and exact scoring."""

from __future__ import annotations

import importlib
import os

import torch
from safetensors.torch import load_file, save_file

import lens
from lens.circuits import attribute
from tests.unit.test_distributed import gloo_group, run_two_processes

CLEAN = torch.tensor([[5, 9, 2, 7], [3, 3, 8, 1], [6, 2, 2, 8], [7, 1, 4, 4], [2, 8, 8, 3]])
CORRUPT = torch.tensor([[5, 9, 20, 7], [3, 30, 8, 1], [6, 2, 40, 8], [7, 10, 4, 4], [2, 8, 9, 3]])
KW = dict(answer=[17, 23, 5, 9, 11], wrong=[40, 41, 6, 12, 13], batch_size=2)


def _graphs(model) -> dict[str, torch.Tensor]:
    """5 pairs in chunks of 2: three chunks, so the two processes get unequal shares."""
    ig = attribute(model, CLEAN, CORRUPT, method="eap-ig", steps=3, per_pair=True,
                   per_position=True, **KW)  # fmt: skip
    ex = attribute(model, CLEAN[:3], CORRUPT[:3], method="exact", per_pair=True,
                   answer=KW["answer"][:3], wrong=KW["wrong"][:3], batch_size=2)  # fmt: skip
    return {
        "ig": ig.scores, "ig_pair": ig.per_pair, "ig_pos": ig.per_position,
        "exact": ex.scores, "exact_pair": ex.per_pair,
    }  # fmt: skip


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    module = importlib.import_module("lens.circuits.attribute")  # the package exports the function

    scored = []  # the chunks this process scored itself (first pair of each)
    inner = module._chunk_scores

    def counting(model, lay, clean, *args, **kw):
        scored.append(int(clean.tokens[0, 0]))
        return inner(model, lay, clean, *args, **kw)

    module._chunk_scores = counting
    with gloo_group(rank, world, port):
        model = lens.load_model(lens.tiny_config("llama"))
        got = {k: v.contiguous() for k, v in _graphs(model).items()}
        got["scored"] = torch.tensor(scored)
        save_file(got, os.path.join(out_dir, f"rank{rank}.safetensors"))


def test_two_gloo_processes_equal_one(tmp_path):
    run_two_processes(_worker, tmp_path)
    torch.set_num_threads(1)
    single = _graphs(lens.load_model(lens.tiny_config("llama")))
    for rank in (0, 1):
        got = load_file(str(tmp_path / f"rank{rank}.safetensors"))
        # chunks [0:2], [2:4], [4:5] dealt in turn: rank 0 scores pairs 0 and 4, rank 1 pair 2
        expected = [CLEAN[0, 0], CLEAN[4, 0]] if rank == 0 else [CLEAN[2, 0]]
        assert got.pop("scored").tolist() == [int(t) for t in expected]
        for key, ref in single.items():
            assert ref.abs().max() > 1e-3, key  # not a graph of zeros
            torch.testing.assert_close(got[key], ref, atol=1e-6, rtol=0, msg=key)
