"""The SmolLM2 dictionaries study: a TopK SAE on a middle residual layer of
SmolLM2-135M-Instruct, trained on the offline corpus (lens.data.corpus), evaluated on its
held-out split, with feature cards and a search for language / code / refusal features.

    PYTHONPATH=. nice python docs/results/smollm2/dictionaries/run.py train   # resumable
    PYTHONPATH=. nice python docs/results/smollm2/dictionaries/run.py report

Arguments are fixed here so the committed results say exactly how they were made.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import torch

import lens
from lens.data.corpus import documents

HERE = Path(__file__).resolve().parent
WORK = Path("/tmp/lens-sae-study")  # checkpoint (not committed)
ARGS = {
    "site": "resid_post",
    "layer": 15,  # of 30
    "n_latents": 4608,
    "k": 32,
    "batch_size": 1024,
    "buffer_tokens": 32768,
    "max_length": 128,
    "rows_per_forward": 16,
    "steps": 1200,
    "dead_after_tokens": 400_000,
    "seed": 0,
}
EVAL_DOCS = 240


def corpus(split: str):
    return (d.text for d in documents(split=split))


def train() -> None:
    torch.set_num_threads(2)
    model = lens.load_model("smollm2-135m-instruct")
    WORK.mkdir(exist_ok=True)
    start = time.time()
    sae = lens.dictionaries.train(
        model, corpus("train"), **ARGS, checkpoint=WORK / "ckpt", checkpoint_every=25, progress=True
    )
    sae.meta["training"]["wall_seconds_this_run"] = round(time.time() - start, 1)
    lens.dictionaries.save(sae, WORK / "sae")
    print("saved", WORK / "sae")


def report() -> None:
    from lens.dictionaries.inspection import feature_card, find_features, plot_card

    torch.set_num_threads(2)
    model = lens.load_model("smollm2-135m-instruct")
    sae = lens.dictionaries.load(WORK / "sae")
    held = [t for t in itertools.islice(corpus("heldout"), EVAL_DOCS)]
    ev = lens.dictionaries.evaluate(model, sae, held, batch_size=8, progress=True)
    (HERE / "evaluation.json").write_text(json.dumps(ev.to_json(), indent=2) + "\n")
    (HERE / "evaluation.md").write_text(ev.table() + "\n")
    found = find_features(model, sae, batch_size=8)
    (HERE / "phenomena.json").write_text(json.dumps(found, indent=2) + "\n")
    cards = HERE / "cards"
    cards.mkdir(exist_ok=True)
    chosen = [f["feature"] for f in found["best"]][:8]
    for f in chosen:
        card = feature_card(model, sae, f, held, top=6)
        plot_card(card, cards / f"feature_{f}.png")
        (cards / f"feature_{f}.json").write_text(json.dumps(card.to_json(), indent=2) + "\n")
    rec = {k: v for k, v in sae.meta["training"].items() if k != "log"}
    (HERE / "training.json").write_text(
        json.dumps({**rec, "log": sae.meta["training"]["log"]}, indent=2) + "\n"
    )
    print(ev.table())


if __name__ == "__main__":
    {"train": train, "report": report}[sys.argv[1]]()
