"""Translators for the organism: its own corpus, and the script that trains the shipped ones.

The corpus is the organism's training distribution (:class:`lens.organism.documents.
DocumentSampler`), drawn with seeds the organism itself was not trained with: ``"train"``
documents for the translators, ``"heldout"`` documents (another seed) for evaluation.

    python -m lens.tuned_lens.organism          # retrain lens/tuned_lens/shipped/organism
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Literal

import torch

SHIPPED = Path(__file__).resolve().parent / "shipped" / "organism"
SEEDS = {"train": 101, "heldout": 202}  # the organism was trained on DocumentSampler seed 0
RECIPE: dict[str, Any] = {"steps": 250, "tokens_per_step": 2048, "seed": 0}
N_TRAIN_DOCS = 4000


def organism_corpus(split: Literal["train", "heldout"], n: int) -> list[str]:
    """``n`` organism documents (plain text, no BOS: it is added when tokenized).

    Example:
        >>> docs = organism_corpus("heldout", 3)
        >>> len(docs), all(isinstance(d, str) and d for d in docs)
        (3, True)
    """
    from lens.organism import world
    from lens.organism.documents import DocumentSampler

    if split not in SEEDS:
        raise ValueError(f"split must be one of {list(SEEDS)}, got {split!r}")
    sampler = DocumentSampler(world(), seed=SEEDS[split])
    return [" ".join(sampler.sample()) for _ in range(n)]


def train_shipped(out: str | Path = SHIPPED, *, progress: bool = False) -> dict[str, Any]:
    """Train translators for the shipped organism, evaluate them on held-out documents, and
    write them with README.md (the record) into ``out``."""
    import lens
    from lens.tuned_lens.evaluate import evaluate
    from lens.tuned_lens.training import train

    torch.set_num_threads(1)
    model = lens.load_model("organism")
    start = time.perf_counter()
    tuned = train(model, organism_corpus("train", N_TRAIN_DOCS), progress=progress, **RECIPE)
    wall = time.perf_counter() - start
    result = evaluate(model, organism_corpus("heldout", 500), translator=tuned)
    tuned.record |= {
        "corpus": f"organism DocumentSampler seed {SEEDS['train']}, {N_TRAIN_DOCS} documents",
        "heldout": f"organism DocumentSampler seed {SEEDS['heldout']}, 500 documents",
        "heldout_logit_kl_bits": [round(x, 5) for x in result.logit_kl_bits],
        "heldout_tuned_kl_bits": [round(x, 5) for x in result.tuned_kl_bits],
        "heldout_tokens": result.n_tokens,
        "wall_seconds": round(wall, 1),
        "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread",
        "trained_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    out = tuned.save(out)
    (out / "README.md").write_text(_readme(tuned.record, result.table()))
    return tuned.record


def _readme(record: dict[str, Any], table: str) -> str:
    return (
        "# Tuned-lens translators for the shipped organism\n\n"
        "Written by `python -m lens.tuned_lens.organism` (`lens/tuned_lens/organism.py`); "
        'load with `lens.tuned_lens.load("organism")`.\n\n'
        f"Training record (also in tuned_lens.json):\n\n```json\n{json.dumps(record, indent=1)}\n"
        f"```\n\nHeld-out evaluation (`lens.tuned_lens.evaluate`):\n\n```\n{table}\n```\n"
    )


if __name__ == "__main__":
    print(json.dumps(train_shipped(progress="--quiet" not in sys.argv), indent=1))
