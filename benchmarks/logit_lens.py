"""Logit lens cost vs a plain forward, and vs TransformerLens's cache path.

Random llama bridge shaped like SmolLM2-135M (30 layers, d_model 576, d_mlp 1536, 9 heads /
3 KV heads, vocab 49152), batch 8 x 64. Every time is a ratio to a plain forward measured side
by side in the same run (interleaved, warm-up, median of per-round ratios). Peak memory of each
case is measured in a fresh subprocess: ``extra_peak_mb`` is the growth of peak RSS over the
loaded model and inputs (peak mark reset after loading).

Cases:
    plain forward            model(tokens)
    lens last                lens.logit_lens(positions="last", top_k=10): 30 layers x 8 rows
                             (the forward stops after the last block: stop_early=True)
    lens last, full forward  the same with stop_early=False (the whole model runs)
    lens all                 lens.logit_lens(positions="all", top_k=10): 30 x 8 x 64 rows
    W_U matmul only          the lower bound of lens all's decode: a [30 x 8 x 64, d_model]
                             stack times W_U in 256-row chunks into one reused buffer, nothing
                             else (no forward, no norm, no softmax/top-k)
    W_U matmul only, tiled   the same product in the decode kernel's tiles (256 rows x
                             BLOCK_FLOATS / 256 tokens), each written into one cache-sized tile
    TL cache, all positions  run_with_cache(resid_pre/resid_post) + accumulated_resid(apply_ln=True)
                             + model.unembed of the whole stack + softmax + top-10
    TL cache, last position  the same with accumulated_resid(pos_slice=-1)

The TL stack has 31 entries (embeddings + 30 resid_post) where lens decodes 30.

    python -m benchmarks.logit_lens [--quick] [--out DIR] [--threads N] [--[no-]memory]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import lens
from benchmarks.harness import (
    QUICK_SHAPE,
    SMOLLM2_SHAPE,
    interleaved,
    machine_info,
    markdown_table,
    peak_memory_in_subprocess,
    report_memory_case,
)
from lens.readout.kernel import BLOCK_FLOATS, unembed_parts

TARGETS = {
    "lens last": "<= 1.15x",
    "lens last, full forward": "<= 1.15x",
    "lens all": "<= 7.5x",
    "W_U matmul only": "(lower bound of the decode)",
    "W_U matmul only, tiled": "(lower bound of the decode)",
    "TL cache, all positions": "(reference, ~13x)",
    "TL cache, last position": "(reference, ~1.6x)",
}
CASES = (
    "plain forward",
    "lens last",
    "lens last, full forward",
    "lens all",
    "W_U matmul only",
    "W_U matmul only, tiled",
    "TL cache, all positions",
    "TL cache, last position",
)


def setup(quick: bool) -> tuple[Any, torch.Tensor]:
    shape = QUICK_SHAPE if quick else SMOLLM2_SHAPE
    model = lens.load_model(lens.tiny_config("llama", **shape))
    batch, seq = (4, 32) if quick else (8, 64)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, shape["d_vocab"], (batch, seq), generator=gen)
    return model, tokens


def cases(model: Any, tokens: torch.Tensor) -> dict[str, Callable[[], Any]]:
    def resid_names(name: str) -> bool:
        return name.endswith(("hook_resid_pre", "hook_resid_post"))

    def tl_cache(pos_slice: int | None) -> Callable[[], Any]:
        def run() -> Any:
            _, cache = model.run_with_cache(tokens, names_filter=resid_names)
            stack = cache.accumulated_resid(apply_ln=True, pos_slice=pos_slice)
            probs = model.unembed(stack).softmax(-1)
            return probs.topk(10, dim=-1)

        return run

    weight, _ = unembed_parts(model)
    n_stack = model.cfg.n_layers * tokens.numel()
    stack = torch.randn(n_stack, model.cfg.d_model, generator=torch.Generator().manual_seed(1))

    def matmul_only(block: int) -> Callable[[], Any]:
        def run() -> Any:
            buf = torch.empty(256 * min(block, weight.shape[0]))
            for start in range(0, n_stack, 256):
                x = stack[start : start + 256]
                for v0 in range(0, weight.shape[0], block):
                    w = weight[v0 : v0 + block]
                    torch.matmul(x, w.T, out=buf[: x.shape[0] * w.shape[0]].view(-1, w.shape[0]))
            return buf

        return run

    return {
        "plain forward": lambda: model(tokens),
        "lens last": lambda: lens.logit_lens(model, tokens, positions="last", top_k=10),
        "lens last, full forward": lambda: lens.logit_lens(
            model, tokens, positions="last", top_k=10, stop_early=False
        ),
        "lens all": lambda: lens.logit_lens(model, tokens, positions="all", top_k=10),
        "W_U matmul only": matmul_only(weight.shape[0]),
        "W_U matmul only, tiled": matmul_only(BLOCK_FLOATS // 256),
        "TL cache, all positions": tl_cache(None),
        "TL cache, last position": tl_cache(-1),
    }


def run(quick: bool = False, memory: bool | None = None) -> list[dict[str, Any]]:
    """Time every case side by side and measure its peak memory; one row per case.

    ``quick``: a small shape, 3 rounds, and (unless ``memory=True``) no memory subprocesses,
    to stay under ~40 s. Rows carry ``suite``, ``case``/``name``, ``ratio_median``,
    ``ratio_min``, ``ratio_max``, ``seconds_median``, ``baseline_seconds_median``, ``target``
    and, with memory, ``peak_rss_mb``, ``extra_peak_mb`` and ``cache_mem_over_this``.

    Example:
        >>> from benchmarks.logit_lens import run
        >>> rows = run(quick=True)  # doctest: +SKIP
    """
    memory = not quick if memory is None else memory
    model, tokens = setup(quick)
    fns = cases(model, tokens)
    with torch.no_grad():
        rows = interleaved(fns, baseline="plain forward", rounds=3, warmup=1)
    shape = "quick (8 layers, d 192, vocab 8192, 4x32)" if quick else "smollm2-135m-shaped"
    extra_args = ["--quick"] if quick else []
    for row in rows:
        row.update(
            suite="logit_lens", name=row["case"], model=shape, target=TARGETS.get(row["case"], "")
        )
        if memory:
            mem = peak_memory_in_subprocess(
                "benchmarks.logit_lens",
                row["case"],
                *extra_args,
                "--threads",
                str(torch.get_num_threads()),
            )
            row.update(peak_rss_mb=mem["peak_rss_mb"], extra_peak_mb=mem["extra_peak_mb"])
    if memory:
        cache_mb = next(r["extra_peak_mb"] for r in rows if r["case"] == "TL cache, all positions")
        for row in rows:
            row["cache_mem_over_this"] = cache_mb / max(row["extra_peak_mb"], 1e-9)
    return rows


def _memory_case(name: str, quick: bool) -> None:
    """In the fresh subprocess: build the model, then measure one case's peak."""

    def work(state: tuple[Any, torch.Tensor]) -> None:
        with torch.no_grad():
            cases(*state)[name]()

    report_memory_case(lambda: setup(quick), work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shape, ~40 s")
    parser.add_argument("--out", default=None, help="write logit_lens.json here")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="peak memory per case in subprocesses (default: on, off in --quick)",
    )
    parser.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_case:
        _memory_case(args.memory_case, args.quick)
        return 0
    rows = run(quick=args.quick, memory=args.memory)
    columns = ["case", "ratio_median", "ratio_min", "ratio_max", "seconds_median", "target"]
    if "extra_peak_mb" in rows[0]:
        columns += ["peak_rss_mb", "extra_peak_mb", "cache_mem_over_this"]
    print(json.dumps(machine_info()))
    print(markdown_table(rows, columns))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "logit_lens.json").write_text(
            json.dumps({"machine": machine_info(), "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
