"""Streaming statistics: ``lens.collect`` with LAPE accumulators (``ActivationProbability`` on
every layer's ``mlp.hook_pre``) vs a plain forward over the same batches (target >= 0.9x
tokens/s, i.e. <= 1.11x time); peak memory at 1x, 4x and 8x corpus, each in a fresh
subprocess (target: flat within 10 %; the accumulators are constant-size, so only the model, one
batch's activations and the allocator count); 1 vs 2 torch.distributed (gloo) processes.

    python -m benchmarks.stats_throughput [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

import lens
from benchmarks.harness import (
    SMOLLM2_SHAPE,
    interleaved,
    machine_info,
    markdown_table,
    peak_memory_in_subprocess,
    report_memory_case,
)

MODULE = "benchmarks.stats_throughput"
SHAPES = {
    "6L-d256": dict(
        n_layers=6,
        d_model=256,
        d_head=64,
        n_heads=4,
        n_key_value_heads=2,
        d_mlp=768,
        d_vocab=2048,
        n_ctx=256,
    ),
    "smollm2-135m-shaped": SMOLLM2_SHAPE,
}
BATCH, SEQ, GROUPS = 16, 64, ("en", "fr", "de", "zh")


def corpus(n: int, vocab: int, seed: int = 0) -> Iterator[tuple[list[int], str]]:
    """A lazy corpus (never held in memory): ``n`` prompts of SEQ-8..SEQ tokens."""
    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        length = int(torch.randint(SEQ - 8, SEQ + 1, (1,), generator=gen))
        yield torch.randint(3, vocab, (length,), generator=gen).tolist(), GROUPS[i % len(GROUPS)]


def lape_accumulator(model: Any) -> lens.stats.ActivationProbability:
    return lens.stats.ActivationProbability.for_model(model, GROUPS)


def throughput(shape: str, n_batches: int, rounds: int, warmup: int) -> list[dict[str, Any]]:
    dims = SHAPES[shape]
    model = lens.load_model(lens.tiny_config("llama", **dims))
    data = list(corpus(n_batches * BATCH, dims["d_vocab"]))
    batches = [
        lens.tokens.batch(model, [x for x, _ in data[i : i + BATCH]])
        for i in range(0, len(data), BATCH)
    ]
    n_tokens = sum(int(b.attention_mask.sum()) for b in batches)

    @torch.no_grad()
    def plain() -> None:
        for b in batches:
            model(b.tokens, attention_mask=b.attention_mask)

    def collect() -> None:
        lens.collect(
            model, data, accumulators=[lape_accumulator(model)], batch_size=BATCH, progress=False
        )

    rows = interleaved(
        {"plain forward": plain, "collect + LAPE every layer": collect},
        baseline="plain forward",
        rounds=rounds,
        warmup=warmup,
    )
    for r in rows:
        r.update(
            model=shape,
            tokens_per_s=n_tokens / r["seconds_median"],
            target="<= 1.11x (>= 0.9x tokens/s)",
        )
    return rows


def memory(shape: str, base: int, control: bool = True) -> list[dict[str, Any]]:
    """Peak RSS of collect at 1x/4x/8x corpus, plus (``control``) a run that stores every
    activation (probes on the same sites) at 8x, which shows that the measurement sees growth."""
    cases = [("collect", 1), ("collect", 4), ("collect", 8)] + [("probes", 8)] * control
    with ThreadPoolExecutor(len(cases)) as pool:  # fresh interpreters, run side by side
        futures = [
            pool.submit(peak_memory_in_subprocess, MODULE, kind, shape, str(base * s))
            for kind, s in cases
        ]
        results = [f.result() for f in futures]
    first = results[0]["peak_rss_mb"]
    rows = []
    for (kind, s), r in zip(cases, results):
        label = "peak memory" if kind == "collect" else "control: probes storing activations"
        rows.append(
            {
                "model": shape,
                "case": f"{label}, {s}x corpus ({base * s} prompts)",
                "peak_mb": r["peak_rss_mb"],
                "extra_peak_mb": r["extra_peak_mb"],
                "growth_vs_1x_mb": r["peak_rss_mb"] - first,
                "ratio_median": r["peak_rss_mb"] / first,
                "target": "flat within 10%" if kind == "collect" else "grows (control)",
            }
        )
    return rows


def _memory_case(kind: str, shape: str, n: int) -> None:
    torch.set_num_threads(1)
    dims = SHAPES[shape]

    def setup() -> Any:
        model = lens.load_model(lens.tiny_config("llama", **dims))
        warm = lape_accumulator(model)  # one warm-up batch: allocator and import costs
        lens.collect(model, corpus(BATCH, dims["d_vocab"], 1), accumulators=[warm], progress=False)
        return model

    def work(model: Any) -> None:
        if kind == "collect":
            acc = lape_accumulator(model)
            lens.collect(
                model,
                corpus(n, dims["d_vocab"]),
                accumulators=[acc],
                batch_size=BATCH,
                progress=False,
            )
            return
        probes = [lens.Probe(s) for s in lape_accumulator(model).sites]
        data = [x for x, _ in corpus(n, dims["d_vocab"])]
        with torch.no_grad(), lens.apply(model, probes=probes):
            for i in range(0, n, BATCH):
                b = lens.tokens.batch(model, data[i : i + BATCH])
                model(b.tokens, attention_mask=b.attention_mask)

    report_memory_case(setup, work)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dist_worker(rank: int, world: int, port: int, shape: str, n: int) -> None:
    """One rank of a gloo run: collect over the whole corpus (each rank takes its shard),
    print the wall time of the collect call as JSON (rank 0 only)."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(
        "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=300)
    )
    dims = SHAPES[shape]
    model = lens.load_model(lens.tiny_config("llama", **dims))
    warm = lape_accumulator(model)
    lens.collect(
        model,
        corpus(BATCH * world, dims["d_vocab"], 1),
        accumulators=[warm],
        batch_size=BATCH,
        progress=False,
    )
    dist.barrier()
    start = time.perf_counter()
    acc = lape_accumulator(model)
    lens.collect(
        model, corpus(n, dims["d_vocab"]), accumulators=[acc], batch_size=BATCH, progress=False
    )
    dist.barrier()
    seconds = time.perf_counter() - start
    if rank == 0:
        print(json.dumps({"seconds": seconds}))
    dist.destroy_process_group()


def distributed(shape: str, n: int) -> list[dict[str, Any]]:
    """Wall time of the same collect with 1 and with 2 gloo processes (fresh interpreters)."""
    import subprocess

    seconds = {}
    for world in (1, 2):
        port = str(_free_port())
        cmd = [sys.executable, "-m", MODULE, "--dist-worker"]
        procs = [
            subprocess.Popen(
                [*cmd, str(r), str(world), port, shape, str(n)], stdout=subprocess.PIPE, text=True
            )
            for r in range(world)
        ]
        outs = [p.communicate(timeout=900)[0] for p in procs]
        if any(p.returncode for p in procs):
            raise RuntimeError(f"distributed run with {world} processes failed")
        seconds[world] = json.loads(outs[0].strip().splitlines()[-1])["seconds"]
    n_tokens = sum(len(x) for x, _ in corpus(n, SHAPES[shape]["d_vocab"]))
    return [
        {
            "model": shape,
            "case": f"{w} process{'es' if w > 1 else ''}: collect wall time",
            "ratio_median": seconds[w] / seconds[1],
            "seconds_median": seconds[w],
            "tokens_per_s": n_tokens / seconds[w],
            "target": "2 processes < 1x (needs >= 2 free cores)",
        }
        for w in (1, 2)
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Throughput, memory and 1-vs-2-process rows (small shape only when quick)."""
    rows = throughput("6L-d256", n_batches=4 if quick else 8, rounds=3 if quick else 7, warmup=1)
    if not quick:
        rows += throughput("smollm2-135m-shaped", n_batches=2, rounds=3, warmup=1)
    rows += memory("6L-d256", base=16 if quick else 128, control=not quick)
    rows += distributed("6L-d256", n=64 if quick else 256)
    return [{"suite": "stats", **r} for r in rows]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-case":
        kind, shape, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        _memory_case(kind, shape, n)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--dist-worker":
        rank, world, port, shape, n = sys.argv[2:7]
        _dist_worker(int(rank), int(world), int(port), shape, int(n))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = run(quick=args.quick)
    print(machine_info())
    print(
        markdown_table(
            rows,
            [
                "model",
                "case",
                "ratio_median",
                "ratio_min",
                "ratio_max",
                "tokens_per_s",
                "peak_mb",
                "target",
            ],
        )
    )


if __name__ == "__main__":
    main()
