"""Hook overhead: a plain forward vs the same forward inside ``lens.apply`` with a no-op
intervention on every layer's resid_post and mlp.hook_post. Target <= 1.02x.

    python -m benchmarks.hook_overhead [--quick]
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

import lens
from benchmarks.harness import (
    SMOLLM2_SHAPE,
    STORIES_SHAPE,
    interleaved,
    machine_info,
    markdown_table,
)

SHAPES = {"stories260k-sized": STORIES_SHAPE, "smollm2-135m-shaped": SMOLLM2_SHAPE}


class NoOp:
    """Returns nothing from every hook: the activation passes through unchanged."""

    def __init__(self, sites: tuple[str, ...]) -> None:
        self.sites = sites

    def hooks(self, model: Any) -> list:
        def noop(act: torch.Tensor, hook: Any) -> None:
            return None

        return [
            (f"blocks.{layer}.{site}", noop)
            for layer in range(model.cfg.n_layers)
            for site in self.sites
        ]


def _model(name: str) -> Any:
    """A model by scale name: random bridges of fixed shapes, the organism, real SmolLM2."""
    if name in SHAPES:
        return lens.load_model(lens.tiny_config("llama", **SHAPES[name]))
    return lens.load_model(name)


def available_models(quick: bool) -> list[str]:
    from lens import smollm2
    from lens.organism import SHIPPED

    names = ["stories260k-sized"]
    if (SHIPPED / "config.json").is_file():
        names.append("organism")
    if not quick:
        names.append("smollm2-135m-shaped")
        if smollm2.available():
            names.append("smollm2-135m-instruct")
    return names


def measure(name: str, rounds: int) -> list[dict[str, Any]]:
    model = _model(name)
    vocab = model.cfg.d_vocab
    tokens = torch.randint(3, vocab, (8, 64), generator=torch.Generator().manual_seed(0))
    noop = NoOp(("hook_resid_post", "mlp.hook_post"))

    @torch.no_grad()
    def plain() -> None:
        model(tokens)

    @torch.no_grad()
    def hooked() -> None:
        with lens.apply(model, interventions=[noop]):
            model(tokens)

    cases = {"plain forward": plain, "lens.apply no-op x2/layer": hooked}
    rows = interleaved(cases, baseline="plain forward", rounds=rounds)
    return [{"suite": "hook_overhead", "model": name, "target": "<= 1.02x", **r} for r in rows]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Rows per model scale, batch 8 x 64 (random bridges, organism, SmolLM2 when present)."""
    return [row for m in available_models(quick) for row in measure(m, 5 if quick else 15)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = run(args.quick)
    print(machine_info())
    print(
        markdown_table(
            rows,
            ["model", "case", "ratio_median", "ratio_min", "ratio_max", "seconds_median", "target"],
        )
    )


if __name__ == "__main__":
    main()
