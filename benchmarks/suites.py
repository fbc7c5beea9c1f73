"""The suite registry: name -> (module with ``run(quick) -> rows``, row filter, description).

One module may feed several suites (its rows split by a filter); it runs once per invocation.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

Row = dict[str, Any]


def _has(word: str) -> Callable[[Row], bool]:
    return lambda row: word in str(row.get("case", "")).lower()


def _lacks(word: str) -> Callable[[Row], bool]:
    return lambda row: word not in str(row.get("case", "")).lower()


SUITES: dict[str, tuple[str, Callable[[Row], bool] | None, str]] = {
    "hooks": ("benchmarks.hook_overhead", None, "lens.apply no-op on every layer vs plain forward"),
    "interventions": (
        "benchmarks.intervention_overhead",
        _lacks("shortcut"),
        "each intervention at every layer, and orthogonalised weights",
    ),
    "logit_lens": (
        "benchmarks.logit_lens",
        None,
        "logit lens vs the TransformerLens cache path: time and peak memory",
    ),
    "stats": (
        "benchmarks.stats_throughput",
        _lacks("process"),
        "lens.collect throughput vs plain forward; peak memory at 1x/4x/8x corpus",
    ),
    "shortcut": (
        "benchmarks.intervention_overhead",
        _has("shortcut"),
        "linear-shortcut speedup when skipping k of L layers",
    ),
    "distributed": (
        "benchmarks.stats_throughput",
        _has("process"),
        "1 vs 2 torch.distributed processes for statistics",
    ),
    "patching": (
        "benchmarks.patching",
        None,
        "activation / attribution patching vs transformer_lens.patching (resid_pre sweep)",
    ),
    "patching_agreement": (
        "benchmarks.patching_agreement",
        None,
        "attribution patching vs exact patching per site (stories260k, organism)",
    ),
    "causal_tracing": ("benchmarks.causal_tracing", None, "causal_trace vs a plain ROME loop"),
    "circuits": ("benchmarks.circuits", None, "edge EAP vs TL; EAP-IG cost, memory; curves"),
    "peers": ("benchmarks.peers", None, "nnsight / nnterp on the same workloads (when installed)"),
    "cli": ("benchmarks.cli_startup", None, "`lens ... --help` start-up time vs `python -c pass`"),
    "html": (
        "benchmarks.html",
        None,
        "size and headless-Chromium load time of a SmolLM2-sized interactive report",
    ),
    "dictionaries": (
        "benchmarks.dictionaries",
        None,
        "SpliceSAE overhead; SAE training tokens/s (reading vs updating; vs eai-sparsify's "
        "update when installed); memory at 1x/8x corpus",
    ),
    "generate": (
        "benchmarks.generate",
        None,
        "KV-cached generation vs the uncached loop and transformers; patchscope; prefix reuse",
    ),
    "tuned_lens": (
        "benchmarks.tuned_lens",
        None,
        "tuned vs logit lens decoding; translator training vs forward + backward",
    ),
}


def run_suites(
    names: list[str], quick: bool, on_suite: Callable[[str, list[Row]], None] | None = None
) -> dict[str, list[Row]]:
    """Rows per suite; a module shared by two suites runs once. ``on_suite(name, rows)`` is
    called as each suite finishes (to print its table at once)."""
    cache: dict[str, list[Row]] = {}
    out: dict[str, list[Row]] = {}
    for name in names:
        module_name, keep, _ = SUITES[name]
        if module_name not in cache:
            try:
                cache[module_name] = importlib.import_module(module_name).run(quick=quick)
            except Exception as exc:  # noqa: BLE001 - one broken suite must not hide the rest
                cache[module_name] = [
                    {"case": module_name, "error": f"{type(exc).__name__}: {exc}"}
                ]
        rows = [r for r in cache[module_name] if "error" in r or keep is None or keep(r)]
        out[name] = [{**r, "suite": name} for r in rows]
        if on_suite is not None:
            on_suite(name, out[name])
    return out
