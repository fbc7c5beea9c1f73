"""Activation patching and attribution patching vs transformer_lens.patching, same bridge.

Random llama bridge shaped like SmolLM2-135M (30 layers, d_model 576, 9 heads / 3 KV heads,
vocab 49152), one clean/corrupt pair of 16 tokens, resid_pre patched at every layer x 16
positions (480 cells). Times are ratios measured side by side in one run (interleaved,
warm-up, median of per-round ratios): the forward and attribution patching over 5 rounds;
the two sweeps once at the full shape (TL's alone takes minutes on 1 CPU
thread). Peak memory is not measured for TL at the full shape.

Cases:
    plain forward                 model(corrupt): the baseline of every ratio
    TL get_act_patch_resid_pre    transformer_lens.patching, one forward per cell
    lens activation_patching      lens.patching.activation_patching(sites=["resid_pre"]),
                                  batch_size cells per forward
    lens attribution_patching     every site (resid_pre, attn_out, mlp_out, head) at every
                                  layer and position: one clean forward + corrupt forward/backward

Rows also carry ``max_abs_diff_vs_tl`` (lens vs TL normalised values) and, with memory, the
peak-RSS growth of each case measured in a fresh subprocess.

    python -m benchmarks.patching [--quick] [--threads N] [--[no-]memory]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import torch
import transformer_lens.patching as tlp

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
from lens.patching import activation_patching, attribution_patching

SEQ = 16
BATCH_SIZE = 64
TARGETS = {
    "TL get_act_patch_resid_pre": "(reference)",
    "lens activation_patching": "TL / lens >= 5x",
    "lens attribution_patching": "<= 3x a forward",
}
CASES = tuple(["plain forward", *TARGETS])


def setup(quick: bool, source: str | None = None) -> dict[str, Any]:
    """The model (a random one of the benchmark shape, or ``source``) and a random token pair."""
    if source is None:
        model = lens.load_model(
            lens.tiny_config("llama", **(QUICK_SHAPE if quick else SMOLLM2_SHAPE))
        )
    else:
        model = lens.load_model(source)
    return dict(model=model, **token_pair(model))


def token_pair(model: Any, *, low: int = 0) -> dict[str, Any]:
    """A random clean prompt of ``SEQ`` tokens (ids from ``low``), its corruption at
    positions 3..5, answer/wrong ids, the clean run's TransformerLens cache and the
    normalised logit-difference metric TransformerLens's patching functions take."""
    vocab = int(model.cfg.d_vocab)
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(low, vocab, (1, SEQ), generator=gen)
    corrupt = clean.clone()
    corrupt[0, 3:6] = torch.randint(low, vocab, (3,), generator=gen)
    answer, wrong = 11, 12
    with torch.no_grad():
        clean_logits, cache = model.run_with_cache(clean)
        corrupt_logits = model(corrupt)

    def diff(logits: torch.Tensor) -> torch.Tensor:
        return logits[0, -1, answer] - logits[0, -1, wrong]

    base, top = diff(corrupt_logits), diff(clean_logits)
    return dict(
        clean=clean, corrupt=corrupt, answer=answer, wrong=wrong, cache=cache,
        tl_metric=lambda logits: (diff(logits) - base) / (top - base),
    )  # fmt: skip


def cases(s: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    model, kw = s["model"], dict(answer=s["answer"], wrong=s["wrong"])
    return {
        "plain forward": lambda: model(s["corrupt"]),
        "TL get_act_patch_resid_pre": lambda: tlp.get_act_patch_resid_pre(
            model, s["corrupt"], s["cache"], s["tl_metric"]
        ),
        "lens activation_patching": lambda: activation_patching(
            model,
            s["clean"],
            s["corrupt"],
            sites=["resid_pre"],
            batch_size=BATCH_SIZE,
            progress=False,
            **kw,
        ),  # fmt: skip
        "lens attribution_patching": lambda: attribution_patching(
            model, s["clean"], s["corrupt"], **kw
        ),
    }


def run(
    quick: bool = False, memory: bool | None = None, source: str | None = None
) -> list[dict[str, Any]]:
    """Rows per case: time ratios to a plain forward, agreement with TL, peak memory.
    ``source``: a real model (e.g. ``smollm2-135m-instruct``) instead of the random shape."""
    memory = (not quick and source is None) if memory is None else memory
    if memory and source is not None:
        raise ValueError("peak memory is measured on the random shape only: pass --no-memory")
    state = setup(quick, source)
    outputs: dict[str, Any] = {}

    def keeping(name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            outputs[name] = fn()

        return call

    fns = {name: keeping(name, fn) for name, fn in cases(state).items()}
    cheap = {k: fns[k] for k in ("plain forward", "lens attribution_patching")}
    sweeps = {k: fns[k] for k in ("plain forward", *CASES[1:3])}
    state["model"](state["corrupt"])  # warm-up
    with torch.no_grad():
        rows = interleaved(cheap, baseline="plain forward", rounds=5, warmup=1)
        rows += interleaved(  # the full shape runs each sweep once (TL: minutes)
            sweeps, baseline="plain forward", rounds=2 if quick else 1, warmup=1 if quick else 0
        )[1:]
    tl = outputs["TL get_act_patch_resid_pre"]
    ours = outputs["lens activation_patching"].values("resid_pre")
    tl_time = next(r["seconds_median"] for r in rows if r["case"] == CASES[1])
    shape = source or ("quick (8 layers, d 192)" if quick else "smollm2-135m-shaped")
    for row in rows:
        row.update(
            suite="patching", name=row["case"], model=shape, target=TARGETS.get(row["case"], "")
        )
        row["tl_over_this"] = tl_time / row["seconds_median"]
        if row["case"] == "lens activation_patching":
            row["max_abs_diff_vs_tl"] = f"{float((ours.float() - tl.float()).abs().max()):.1e}"
        if memory and (quick or row["case"] != CASES[1]):  # TL: one forward at a time
            args = ["--quick"] if quick else []
            mem = peak_memory_in_subprocess("benchmarks.patching", row["case"], *args)
            row.update(peak_rss_mb=mem["peak_rss_mb"], extra_peak_mb=mem["extra_peak_mb"])
    return rows


def _memory_case(name: str, quick: bool) -> None:
    def work(state: dict[str, Any]) -> None:
        cases(state)[name]()

    report_memory_case(lambda: setup(quick), work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shape")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help="a real model instead (no memory rows)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_case:
        _memory_case(args.memory_case, args.quick)
        return 0
    rows = run(quick=args.quick, memory=args.memory, source=args.model)
    columns = ["case", "ratio_median", "ratio_min", "ratio_max", "seconds_median", "tl_over_this",
               "max_abs_diff_vs_tl", "target"]  # fmt: skip
    if "extra_peak_mb" in rows[0]:
        columns += ["peak_rss_mb", "extra_peak_mb"]
    print(json.dumps(machine_info()))
    print(markdown_table(rows, columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
