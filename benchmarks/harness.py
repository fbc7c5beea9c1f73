"""Timing and memory helpers shared by the suites.

Ratios are measured side by side in one process: the cases run interleaved (A B A B ...)
after a warm-up, and each ratio is the median of per-round ratios, with min and max. Peak
memory is measured per case in a fresh subprocess (ru_maxrss), never in the process that ran
other cases.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import torch

# Model shapes the suites share (random llama-family bridges via lens.tiny_config).
SMOLLM2_SHAPE = dict(
    n_layers=30,
    d_model=576,
    d_head=64,
    n_heads=9,
    n_key_value_heads=3,
    d_mlp=1536,
    d_vocab=49152,
    n_ctx=2048,
)
# a SmolLM2-like shape small enough for --quick (fewer layers, narrower, smaller vocabulary)
QUICK_SHAPE = dict(
    n_layers=8,
    d_model=192,
    d_head=64,
    n_heads=3,
    n_key_value_heads=1,
    d_mlp=512,
    d_vocab=8192,
    n_ctx=256,
)
STORIES_SHAPE = dict(
    n_layers=5,
    d_model=64,
    d_head=8,
    n_heads=8,
    n_key_value_heads=4,
    d_mlp=172,
    d_vocab=512,
    n_ctx=512,
)


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformer_lens": version("transformer-lens"),
        "python": platform.python_version(),
    }


def interleaved(
    cases: dict[str, Callable[[], Any]], *, baseline: str, rounds: int = 10, warmup: int = 2
) -> list[dict[str, Any]]:
    """Time every case ``rounds`` times, interleaved, and report ratios to ``baseline``."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = times[baseline]
    rows = []
    for name, ts in times.items():
        ratios = [t / b for t, b in zip(ts, base)]
        rows.append(
            {
                "case": name,
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "seconds_median": statistics.median(ts),
                "baseline_seconds_median": statistics.median(base),
            }
        )
    return rows


def proc_status_mb(*keys: str) -> dict[str, float]:
    """Fields of /proc/self/status in MB (e.g. VmHWM, the peak resident memory, and VmRSS)."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in keys:
                out[key] = int(value.split()[0]) / 1024
    missing = set(keys) - set(out)
    if missing:
        raise RuntimeError(f"no {sorted(missing)} in /proc/self/status")
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB: VmHWM from /proc/self/status.

    Not ru_maxrss: Linux carries that over from the parent through fork + exec, so a child of a
    big process would report the parent's peak."""
    return proc_status_mb("VmHWM")["VmHWM"]


def peak_memory_in_subprocess(module: str, case: str, *args: str, timeout: float = 600) -> dict:
    """Run ``python -m MODULE --memory-case CASE ARGS`` in a fresh process; it must print one
    JSON line with its measurements (see :func:`report_memory_case`)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1048576")
    cmd = [sys.executable, "-m", module, "--memory-case", case, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"memory case {case} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report_memory_case(setup: Callable[[], Any], work: Callable[[Any], Any]) -> None:
    """Inside the subprocess: build the inputs, reset the peak mark (Linux clear_refs, so the
    setup's own transient peak cannot mask the work's), run the work, print the peaks."""
    state = setup()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = proc_status_mb("VmRSS")["VmRSS"]
    except OSError:  # not allowed here: peaks then include the setup
        before = peak_rss_mb()
    work(state)
    after = peak_rss_mb()
    print(
        json.dumps({"rss_before_mb": before, "peak_rss_mb": after, "extra_peak_mb": after - before})
    )


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def target_missed(row: dict[str, Any]) -> bool | None:
    """Whether a row misses its target, for targets written ``<= X``/``>= X`` (a ratio, or
    seconds when X ends in ``s``); None when the target is not of that form or the row has
    no number to compare.

    Example:
        >>> target_missed({"target": "<= 1.05x", "ratio_median": 1.2})
        True
        >>> target_missed({"target": "<= 0.5 s", "seconds_median": 0.1})
        False
    """
    match = re.match(r"\s*([<>]=)\s*([0-9.]+)\s*(x|s)?\b", str(row.get("target", "")))
    if not match:
        return None
    op, bound, unit = match.group(1), float(match.group(2)), match.group(3)
    value = row.get("seconds_median" if unit == "s" else "ratio_median")
    if not isinstance(value, (int, float)):
        return None
    return value > bound if op == "<=" else value < bound


def standalone_main(
    run: Callable[..., list[dict[str, Any]]],
    columns: list[str],
    *,
    description: str,
    quick_help: str = "small shapes only",
) -> None:
    """``python -m benchmarks.NAME [--quick] [--json FILE] [--threads N]`` for one suite:
    its rows as a markdown table (and JSON), after the machine info."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = run(quick=args.quick)
    print(machine_info())
    print(markdown_table(rows, columns))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
