"""Overhead of interventions relative to a plain forward, measured side by side.

All cases run interleaved (A B C ... A B C ...) after a warm-up, in one process
(``benchmarks.harness.interleaved``); each row reports the median, min and max of the per-round
ratios to the plain forward, and the absolute medians. The orthogonalised case runs an identical
twin model whose weights were edited. Cases: each hook intervention applied at every
layer, orthogonalised weights (plain forward on edited weights), and ``lens.shortcuts.predict``
skipping k of L layers, decoding the last position as the studies do (target: about (L-k)/L;
the embedding and one row's unembedding are still paid).

Run:  python -m benchmarks.intervention_overhead [--quick] [--json out.json]
Import: ``from benchmarks.intervention_overhead import run; rows = run(quick=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import lens
from benchmarks.harness import SMOLLM2_SHAPE, interleaved, standalone_main
from interventions import (
    ActivationAddition,
    DirectionAblation,
    LinearShortcut,
    NeuronDeactivation,
    orthogonalize,
)

SMALL_SHAPE = dict(
    n_layers=12, d_model=256, d_head=64, n_heads=4, n_key_value_heads=2, d_mlp=768, d_vocab=8192
)


def _hooked(model: Any, tokens: torch.Tensor, *items: Any) -> Callable[[], Any]:
    def fn() -> Any:
        with lens.apply(model, *items):
            return model(tokens)

    return fn


def _cases(model: Any, twin: Any, tokens: torch.Tensor) -> tuple[dict[str, Any], dict[str, str]]:
    """Cases (name -> fn) and their targets. ``twin`` is an identical model, orthogonalised."""
    n, d, d_mlp = model.cfg.n_layers, model.cfg.d_model, model.cfg.d_mlp
    g = torch.Generator().manual_seed(0)
    r = torch.randn(d, generator=g)
    idx = torch.randperm(d_mlp, generator=g)[:16].tolist()
    every = {layer: idx for layer in range(n)}
    means = {layer: torch.randn(len(idx), generator=g) for layer in range(n)}
    orthogonalize(twin, r)  # permanent on the twin
    hook = "<= 1.05"
    cases: dict[str, Any] = {
        "plain forward": (lambda: model(tokens), "1.00"),
        "apply() with no intervention": (_hooked(model, tokens), hook),
        "NeuronDeactivation zero, 16/layer, all layers": (
            _hooked(model, tokens, NeuronDeactivation(every)),
            hook,
        ),
        "NeuronDeactivation means, last pos, all layers": (
            _hooked(model, tokens, NeuronDeactivation(every, value=means, positions="last")),
            hook,
        ),
        "DirectionAblation all layers x 3 sites": (
            _hooked(model, tokens, DirectionAblation(r)),
            hook,
        ),
        "DirectionAblation last pos, all layers x 3 sites": (
            _hooked(model, tokens, DirectionAblation(r, positions="last")),
            hook,
        ),
        "ActivationAddition at every layer": (
            _hooked(model, tokens, *[ActivationAddition(r, layer, 2.0) for layer in range(n)]),
            hook,
        ),
        "orthogonalised weights (plain forward)": (lambda: twin(tokens), "1.00"),
    }
    for k in sorted({n // 3, (2 * n) // 3, n - 1}):
        sc = LinearShortcut(
            torch.eye(d) + 0.01 * torch.randn(d, d, generator=g), r, n - 1 - k, n - 1
        )
        cases[f"lens.shortcuts.predict skipping {k}/{n} layers, last position"] = (
            lambda sc=sc: lens.shortcuts.predict(model, sc, tokens, positions="last"),
            f"<= {(n - k) / n + 0.05:.2f}",
        )
    return {k: v[0] for k, v in cases.items()}, {k: v[1] for k, v in cases.items()}


def _bench_shape(name: str, shape: dict[str, int], batch: int, seq: int, rounds: int) -> list[dict]:
    config = lens.tiny_config("llama", **dict(shape, n_ctx=max(128, seq, shape.get("n_ctx", 0))))
    model, twin = lens.load_model(config), lens.load_model(config)  # same seed: same weights
    tokens = torch.randint(0, shape["d_vocab"], (batch, seq), generator=torch.Generator())
    with torch.no_grad():
        cases, targets = _cases(model, twin, tokens)
        rows = interleaved(cases, baseline="plain forward", rounds=rounds, warmup=1)
    return [
        {"suite": "intervention_overhead", "model": name, "target": targets[r["case"]], **r}
        for r in rows
    ]


def run(quick: bool = False) -> list[dict]:
    """Measure every case; ``quick`` uses a small model only (about 10 s on one core).

    Returns rows with ``suite, model, case, target, ratio_median, ratio_min, ratio_max,
    seconds_median, baseline_seconds_median`` (the baseline is the plain forward).
    """
    torch.manual_seed(0)
    if quick:
        quick_shape = dict(SMALL_SHAPE, n_layers=6, d_model=128, d_mlp=384, d_head=32)
        return _bench_shape("small-6L-128d, 4x32", quick_shape, 4, 32, rounds=5)
    rows = _bench_shape("small-12L-256d, 8x64", SMALL_SHAPE, 8, 64, rounds=9)
    rows += _bench_shape("SmolLM2-135M-shaped (random), 8x64", SMOLLM2_SHAPE, 8, 64, rounds=5)
    return rows


COLUMNS = ["model", "case", "ratio_median", "ratio_min", "ratio_max", "seconds_median", "target"]


def main() -> None:
    standalone_main(
        run, COLUMNS, description=__doc__.splitlines()[0], quick_help="small model only (~10 s)"
    )


if __name__ == "__main__":
    main()
