"""How well attribution patching (AtP) tracks exact activation patching, per site.

On trained models (stories260k when present, the organism): for every site, the Pearson
correlation between the two methods' normalised values over all (layer, position[, head])
cells, and the largest absolute gap. Not a timing suite; ``ratio_*`` columns stay empty.

Pairs: the organism asks the same relation of two subjects of equal token length
(answer = the clean subject's object, wrong = the corrupt one's); stories260k swaps one noun
(answer / wrong = each prompt's own top next token).

    python -m benchmarks.patching_agreement [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch

import lens
from benchmarks.harness import machine_info, markdown_table
from lens.patching import activation_patching, attribution_patching

STORIES = Path(__file__).resolve().parents[2] / "shared" / "assets" / "stories260k"
STORIES = Path(os.environ.get("LENS_STORIES260K", STORIES))
STORY_PAIRS = [
    ("Lily saw a big dog. The big", "Lily saw a big cat. The big"),
    ("Lily had a red ball. She played with the red", "Lily had a red toy. She played with the red"),
]


def organism_pairs(model: Any, n: int) -> tuple[list[str], list[str], list[str], list[str]]:
    from lens.organism.prompts import fact_queries
    from lens.studies._organism_data import organism_world

    queries = fact_queries(organism_world(model), "en")
    clean, corrupt, answer, wrong = [], [], [], []
    length = {q.prompt: len(lens.tokens.batch(model, [q.prompt]).tokens[0]) for q in queries}
    for a in queries:
        for b in queries:
            if len(clean) == n:
                return clean, corrupt, answer, wrong
            if (a.relation == b.relation and a.answer != b.answer and a.prompt not in clean
                    and length[a.prompt] == length[b.prompt]):  # fmt: skip
                clean.append(a.prompt)
                corrupt.append(b.prompt)
                answer.append(" " + a.answer)
                wrong.append(" " + b.answer)
    return clean, corrupt, answer, wrong


def story_pairs(model: Any) -> tuple[list[str], list[str], list[int], list[int]]:
    clean, corrupt = [p for p, _ in STORY_PAIRS], [q for _, q in STORY_PAIRS]
    answers = []
    for prompts in (clean, corrupt):
        b = lens.tokens.batch(model, prompts)
        with torch.no_grad():
            logits = model(b.tokens, attention_mask=b.attention_mask)
        answers.append(logits[torch.arange(len(b)), b.last_positions].argmax(-1).tolist())
    return clean, corrupt, answers[0], answers[1]


def agreement(model: Any, name: str, clean, corrupt, answer, wrong) -> list[dict[str, Any]]:
    kw = dict(answer=answer, wrong=wrong)
    exact = activation_patching(model, clean, corrupt, progress=False, **kw)
    approx = attribution_patching(model, clean, corrupt, **kw)
    rows = []
    for site in exact.sites:
        a, b = exact.values(site).flatten(), approx.values(site).flatten()
        corr = float(torch.corrcoef(torch.stack([a, b]).double())[0, 1])
        rows.append(
            {"suite": "patching_agreement", "model": name, "case": f"AtP vs exact, {site}",
             "pearson": corr, "max_abs_gap": float((a - b).abs().max()),
             "max_abs_exact": float(a.abs().max()), "pairs": len(clean), "cells": a.numel()}
        )  # fmt: skip
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    rows = []
    if (STORIES / "config.json").is_file():
        model = lens.load_model(STORIES)
        lens.models.small_model_threads(model)
        rows += agreement(model, "stories260k", *story_pairs(model))
    model = lens.load_model("organism")
    lens.models.small_model_threads(model)
    rows += agreement(model, "organism", *organism_pairs(model, 2 if quick else 6))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    print(json.dumps(machine_info()))
    cols = ["model", "case", "pearson", "max_abs_gap", "max_abs_exact", "pairs", "cells"]
    print(markdown_table(rows, cols))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
