"""Edge attribution (lens.circuits) vs TransformerLens 4.3's edge attribution_patch; EAP-IG cost.

Cases:
    TL attribution_patch (edge)   TL 4.3, 32 pairs (it loops over pairs), the organism (MHA:
                                  the only kind TL accepts)
    lens attribute eap            lens.circuits.attribute(method="eap"), same 32 pairs, one batch
    forward+backward              SmolLM2-shaped random llama (GQA), a batch of pairs: one
                                  forward and a backward to the input embedding (the baseline)
    lens attribute eap-ig x5      every edge (q/k/v readers per head / kv head), 5 IG steps,
                                  ``batch_size`` pairs per forward (full: 32 pairs, batches of 8)
    20 batched forwards           the organism, a batch of pairs: 20 plain forwards (baseline)
    faithfulness_curve 20 sizes   the same pairs: every size of a chunk in one patched forward
    peak memory (full mode)       EAP-IG in fresh processes: extra peak RSS for 32 pairs and
                                  for 8 pairs, both in batches of 8 (bounded by batch_size, not
                                  by the number of pairs)

Rows carry ``ratio`` (TL / lens for the first pair of cases; time / forward+backward for
EAP-IG; time / 20 forwards for the curve), ``max_abs_diff_vs_tl`` (scores summed over
positions) and the target.

    python -m benchmarks.circuits [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch
from transformer_lens.tools.analysis.attribution_patching import (
    EdgeAttributionConfig,
    attribution_patch,
)

import lens
from benchmarks.harness import (
    QUICK_SHAPE,
    SMOLLM2_SHAPE,
    machine_info,
    markdown_table,
    peak_memory_in_subprocess,
    report_memory_case,
)
from lens.circuits import Graph, attribute, faithfulness_curve

MODULE = "benchmarks.circuits"

SEQ = 16
STEPS = 5


def _pairs(vocab: int, n: int, seq: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(3, vocab, (n, seq), generator=gen)
    corrupt = clean.clone()
    corrupt[:, seq // 3] = torch.randint(3, vocab, (n,), generator=gen)
    return clean, corrupt


def _best_of(fn: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(rounds):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def vs_transformer_lens(n_pairs: int, rounds: int) -> list[dict[str, Any]]:
    model = lens.load_model("organism")
    clean, corrupt = _pairs(int(model.cfg.d_vocab), n_pairs, SEQ)
    answer, wrong = 5, 6

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return logits[0, -1, answer] - logits[0, -1, wrong]

    cfg = EdgeAttributionConfig(granularity="edge")
    t_tl, tl = _best_of(lambda: attribution_patch(model, clean, corrupt, metric, cfg), 1)
    t_lens, ours = _best_of(
        lambda: attribute(
            model, clean, corrupt, answer=answer, wrong=wrong, method="eap", batch_size=n_pairs
        ),
        rounds,
    )
    ref = Graph.from_transformer_lens(tl.edge_scores, ours.layout)
    diff = float((ref.scores - ours.scores).abs().max())
    case = f"organism, {n_pairs} pairs x {SEQ} tokens, {ours.n_edges} edges"
    return [
        dict(case=f"TL attribution_patch (edge), {case}", seconds=t_tl, ratio=None,
             max_abs_diff_vs_tl=None, max_abs_score=float(ref.scores.abs().max()),
             target="(reference)"),
        dict(case=f"lens attribute eap, {case}", seconds=t_lens, ratio=t_tl / t_lens,
             max_abs_diff_vs_tl=f"{diff:.1e}", max_abs_score=float(ours.scores.abs().max()),
             target="TL / lens >= 10x"),
    ]  # fmt: skip


def eap_ig_cost(
    quick: bool, n_pairs: int, rounds: int, batch_size: int | None = None
) -> list[dict[str, Any]]:
    shape = QUICK_SHAPE if quick else SMOLLM2_SHAPE
    model = lens.load_model(lens.tiny_config("llama", **shape))
    clean, corrupt = _pairs(int(model.cfg.d_vocab), n_pairs, SEQ)

    def fwd_bwd() -> None:
        leaf: list[torch.Tensor] = []

        def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
            out = act.detach().requires_grad_(True)
            leaf.append(out)
            return out

        class Leaf:
            def hooks(self, model: Any) -> list[tuple[str, Any]]:
                return [("hook_embed", hook)]

        with torch.enable_grad(), lens.apply(model, Leaf()):
            logits = model(corrupt)
            torch.autograd.grad((logits[:, -1, 5] - logits[:, -1, 6]).sum(), leaf)

    def ig() -> Any:
        return attribute(
            model, clean, corrupt, answer=5, wrong=6, method="eap-ig", steps=STEPS,
            batch_size=batch_size or n_pairs,
        )  # fmt: skip

    fwd_bwd()
    t_base, _ = _best_of(fwd_bwd, rounds)
    t_ig, g = _best_of(ig, rounds)
    name = "quick shape" if quick else "SmolLM2 shape"
    case = f"{name}, {n_pairs} pairs x {SEQ} tokens, {g.n_edges} edges"
    if batch_size:
        case += f", batches of {batch_size} pairs"
    return [
        dict(case=f"forward+backward, {case}", seconds=t_base, ratio=1.0, target="(baseline)"),
        dict(case=f"lens attribute eap-ig x{STEPS}, {case}", seconds=t_ig, ratio=t_ig / t_base,
             target=f"<= {1.5 * STEPS:g}x (1.5 x steps)"),
    ]  # fmt: skip


def curve_cost(n_pairs: int, rounds: int, sizes: int = 20) -> list[dict[str, Any]]:
    """``faithfulness_curve`` over ``sizes`` sizes vs ``sizes`` plain batched forwards."""
    model = lens.load_model("organism")
    clean, corrupt = _pairs(int(model.cfg.d_vocab), n_pairs, SEQ)
    graph = attribute(model, clean, corrupt, answer=5, wrong=6, method="eap", batch_size=n_pairs)
    grid = torch.logspace(0, torch.log10(torch.tensor(float(graph.n_edges))), sizes)
    picked = sorted({int(round(float(v))) for v in grid})

    def forwards() -> None:
        with torch.no_grad():
            for _ in range(sizes):
                model(corrupt)

    def curve() -> Any:
        return faithfulness_curve(
            model, graph, clean, corrupt, sizes=picked, answer=5, wrong=6, batch_size=n_pairs
        )

    forwards()
    t_base, _ = _best_of(forwards, rounds)
    t_curve, c = _best_of(curve, rounds)
    case = f"organism, {n_pairs} pairs x {SEQ} tokens, {len(c.sizes)} sizes (0 and all included)"
    return [
        dict(case=f"{sizes} batched forwards, {case}", seconds=t_base, ratio=1.0,
             target="(baseline)"),
        dict(case=f"faithfulness_curve, {case}", seconds=t_curve, ratio=t_curve / t_base,
             target="<= 2x"),
    ]  # fmt: skip


MEMORY_CASES = [(32, 8), (8, 8)]  # (pairs, batch_size)


def _memory_case(n_pairs: int, batch_size: int) -> None:
    torch.set_num_threads(1)

    def setup() -> Any:
        model = lens.load_model(lens.tiny_config("llama", **SMOLLM2_SHAPE))
        return model, *_pairs(int(model.cfg.d_vocab), n_pairs, SEQ)

    def work(state: Any) -> None:
        model, clean, corrupt = state
        attribute(model, clean, corrupt, answer=5, wrong=6, method="eap-ig", steps=STEPS,
                  batch_size=batch_size)  # fmt: skip

    report_memory_case(setup, work)


def memory() -> list[dict[str, Any]]:
    """Extra peak RSS of EAP-IG (SmolLM2 shape) per (pairs, batch_size), fresh processes."""
    rows = []
    for n, b in MEMORY_CASES:
        r = peak_memory_in_subprocess(MODULE, "eap-ig", str(n), str(b), timeout=3000)
        rows.append(dict(case=f"peak memory: eap-ig x{STEPS}, SmolLM2 shape, {n} pairs in "
                              f"batches of {b}", seconds=None, ratio=None,
                         extra_peak_mb=r["extra_peak_mb"], peak_mb=r["peak_rss_mb"],
                         target="set by batch_size, not pairs"))  # fmt: skip
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Rows of every comparison (``quick``: 8 organism pairs, the small llama shape, 2 pairs
    for EAP-IG, no memory cases)."""
    rows = vs_transformer_lens(8 if quick else 32, rounds=1 if quick else 2)
    if quick:
        rows += eap_ig_cost(quick, n_pairs=2, rounds=1)
    else:
        rows += eap_ig_cost(quick, n_pairs=32, rounds=1, batch_size=8)
    rows += curve_cost(8 if quick else 32, rounds=1 if quick else 2)
    if not quick:
        rows += memory()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("case_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_case:
        _memory_case(int(args.case_args[0]), int(args.case_args[1]))
        return 0
    torch.set_num_threads(args.threads)
    rows = run(quick=args.quick)
    columns = ["case", "seconds", "ratio", "max_abs_diff_vs_tl", "max_abs_score",
               "extra_peak_mb", "target"]  # fmt: skip
    print(json.dumps(machine_info()))
    print(markdown_table(rows, columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
