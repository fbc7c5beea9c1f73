"""Sparse dictionaries: splice overhead, training throughput, memory flat in corpus size.

* splice overhead: ``SpliceSAE`` (error term on / off) at one middle residual layer vs a plain
  forward, interleaved (target <= 1.1x at 4,608 latents on the SmolLM2 shape);
* training: ``lens.dictionaries.train`` tokens/s including the model forward, with the share
  of time spent reading activations vs updating the SAE; and the SAE update alone (sparse
  encoder backward) next to the dense backward and eai-sparsify's ``SparseCoder`` (same
  shape, k, batches, Adam) when ``sparsify`` imports (its full trainer needs a Hugging Face
  model and dataset, so only the update is compared);
* memory: peak RSS of a training run over 1x and 8x the corpus, each in a fresh process.

Run:  python -m benchmarks.dictionaries [--quick] [--json out.json]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import torch

import lens
from benchmarks.harness import (
    QUICK_SHAPE,
    SMOLLM2_SHAPE,
    interleaved,
    peak_memory_in_subprocess,
    report_memory_case,
    standalone_main,
)
from interventions import SpliceSAE
from lens.dictionaries import Trainer, random_sae

MODULE = "benchmarks.dictionaries"
SHAPES = {"quick": QUICK_SHAPE, "smollm2": SMOLLM2_SHAPE}


def _model(shape: str) -> Any:
    return lens.load_model(lens.tiny_config("llama", **SHAPES[shape]))


def _docs(n: int, vocab: int, length: int = 64, seed: int = 0) -> Any:
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        yield torch.randint(3, vocab, (length,), generator=g).tolist()


def splice_rows(shape: str, n_latents: int, rounds: int) -> list[dict[str, Any]]:
    model = _model(shape)
    layer = model.cfg.n_layers // 2
    sae = random_sae(model, site="resid_post", layer=layer, n_latents=n_latents, k=32)
    tokens = torch.randint(3, model.cfg.d_vocab, (8, 64), generator=torch.Generator())

    def hooked(*items: Any) -> Callable[[], Any]:
        def fn() -> Any:
            with lens.apply(model, *items):
                return model(tokens)

        return fn

    with torch.no_grad():
        rows = interleaved(
            {
                "plain forward": lambda: model(tokens),
                f"SpliceSAE error=True ({n_latents} latents, k=32)": hooked(SpliceSAE(sae)),
                f"SpliceSAE error=False ({n_latents} latents, k=32)": hooked(
                    SpliceSAE(sae, error=False)
                ),
            },
            baseline="plain forward",
            rounds=rounds,
            warmup=1,
        )
    return [
        {
            "model": f"{shape} (random), 8x64",
            "target": "<= 1.10" if "Splice" in r["case"] else "1.00",
            **r,
        }
        for r in rows
    ]


def training_rows(shape: str, n_latents: int, steps: int) -> list[dict[str, Any]]:
    model = _model(shape)
    layer = model.cfg.n_layers // 2
    start = time.perf_counter()
    sae = lens.dictionaries.train(
        model,
        _docs(10_000, model.cfg.d_vocab),
        layer=layer,
        n_latents=n_latents,
        k=32,
        batch_size=1024,
        buffer_tokens=8192,
        steps=steps,
        rows_per_forward=16,
    )
    wall = time.perf_counter() - start
    rec = sae.meta["training"]
    busy = rec["seconds_reading"] + rec["seconds_updating"]
    rows = [
        {
            "model": f"{shape} (random)",
            "case": f"train {n_latents} latents k=32, "
            f"{steps} steps x 1024 tokens (incl. model forward)",
            "tokens_per_s": rec["tokens"] / wall,
            "reading_share": rec["seconds_reading"] / busy,
            "updating_share": rec["seconds_updating"] / busy,
            "seconds": wall,
        }
    ]
    rows += update_rows(int(model.cfg.d_model), n_latents, steps)
    return rows


def update_rows(d: int, n_latents: int, steps: int) -> list[dict[str, Any]]:
    """The SAE update alone on identical batches: lens's Trainer (sparse encoder backward, the
    default) vs its dense backward (the trainer before the sparse one) and, when it imports,
    sparsify's SparseCoder."""
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(1024, d, generator=g) for _ in range(4)]
    cases: dict[str, Callable[[], Any]] = {}
    it = {"i": 0}
    for backward in ("sparse", "dense"):
        trainer = Trainer(random_sae_like(d, n_latents), lr=1e-3, backward=backward)

        def lens_step(t: Trainer = trainer) -> None:
            t.step(batches[it["i"] % 4])

        name = "lens Trainer.step" + ("" if backward == "sparse" else " (dense backward)")
        cases[name] = lens_step
    note = "sparsify not installed"
    try:
        from sparsify import SparseCoder, SparseCoderConfig

        coder = SparseCoder(d, SparseCoderConfig(num_latents=n_latents, k=32))
        opt = torch.optim.Adam(coder.parameters(), lr=1e-3)
        dead = torch.zeros(n_latents, dtype=torch.bool)

        def sparsify_step() -> None:
            out = coder(batches[it["i"] % 4], dead_mask=dead)
            (out.fvu + out.auxk_loss / 32).backward()
            coder.remove_gradient_parallel_to_decoder_directions()
            opt.step()
            opt.zero_grad()
            coder.set_decoder_norm_to_unit_norm()

        cases["sparsify SparseCoder step"] = sparsify_step
        note = "sparsify " + __import__("importlib.metadata").metadata.version("eai-sparsify")
    except ImportError:
        pass
    rows = interleaved(cases, baseline="lens Trainer.step", rounds=max(3, steps // 4), warmup=1)
    return [
        {
            "model": f"d={d}",
            "case": f"{r['case']} ({n_latents} latents, 1024 tokens)",
            "ratio_median": r["ratio_median"],
            "seconds": r["seconds_median"],
            "tokens_per_s": 1024 / r["seconds_median"],
            "note": note,
        }
        for r in rows
    ]


def random_sae_like(d: int, n_latents: int) -> Any:
    w = torch.nn.functional.normalize(torch.randn(n_latents, d), dim=-1)
    return lens.dictionaries.SAE(
        w.T.clone(), torch.zeros(n_latents), w, torch.zeros(d), site="resid_post", layer=0, k=32
    )


def memory_rows(base_docs: int) -> list[dict[str, Any]]:
    rows = []
    for scale in (1, 8):
        peak = peak_memory_in_subprocess(MODULE, "train", str(base_docs * scale))
        rows.append(
            {
                "model": "quick (random)",
                "case": f"train over {scale}x corpus ({base_docs * scale} docs x 64 tokens)",
                **peak,
            }
        )
    return rows


def _memory_case(n_docs: int) -> None:
    torch.set_num_threads(1)

    def setup() -> Any:
        return _model("quick")

    def work(model: Any) -> None:
        lens.dictionaries.train(
            model,
            _docs(n_docs, model.cfg.d_vocab),
            layer=4,
            n_latents=1536,
            k=32,
            batch_size=512,
            buffer_tokens=4096,
        )

    report_memory_case(setup, work)


def run(quick: bool = False) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    if quick:
        rows = splice_rows("quick", 1536, rounds=5)
        rows += training_rows("quick", 1536, steps=8)
        return rows + memory_rows(32)
    rows = splice_rows("smollm2", 4608, rounds=7)
    rows += training_rows("smollm2", 4608, steps=12)
    return rows + memory_rows(128)


COLUMNS = [
    "model",
    "case",
    "ratio_median",
    "ratio_min",
    "ratio_max",
    "tokens_per_s",
    "reading_share",
    "updating_share",
    "extra_peak_mb",
    "target",
    "note",
]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-case":
        _memory_case(int(sys.argv[3]))
        return
    standalone_main(run, COLUMNS, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    main()
