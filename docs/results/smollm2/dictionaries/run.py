"""The SmolLM2 dictionaries study: a TopK SAE on a middle residual layer of
SmolLM2-135M-Instruct, trained on the offline corpus (lens.data.corpus), evaluated on its
held-out split, with feature cards and a search for language / code / refusal features.

    PYTHONPATH=. nice -n 5 python docs/results/smollm2/dictionaries/run.py train 52  # minutes
    PYTHONPATH=. nice python docs/results/smollm2/dictionaries/run.py report

Arguments are fixed here so the committed results say exactly how they were made.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import torch

import lens
from lens.data.corpus import documents

HERE = Path(__file__).resolve().parent
WORK = Path("/tmp/lens-sae-study-2")  # checkpoint (not committed)
ARGS = {
    "site": "resid_post",
    "layer": 15,  # of 30
    "n_latents": 4608,
    "k": 32,
    "batch_size": 1024,
    "buffer_tokens": 16384,
    "max_length": 128,
    "rows_per_forward": 16,
    "steps": None,  # until the wall budget stops the corpus (see train)
    "dead_after_tokens": 100_000,
    "seed": 0,
    "exclude_first": True,  # position 0 of every row is an attention sink (norm ~22,000 vs ~200)
}
EVAL_TOKENS = 2500  # held-out documents (shuffled) until this many tokens after the first
EVAL_CHARS = 600  # each held-out document cut to its first 600 characters


def corpus(split: str):
    """The split's texts in a fixed shuffled order (the stdlib streams in path order, which
    would give a short run only the first few packages)."""
    texts = [d.text for d in documents(split=split)]
    random.Random(0).shuffle(texts)
    return texts


def train(minutes: float) -> None:
    """Train until the corpus stops handing out documents ``minutes`` after the start (the
    shuffle buffer is then used up); resumable from the checkpoint in WORK."""
    torch.set_num_threads(1)
    model = lens.load_model("smollm2-135m-instruct")
    WORK.mkdir(exist_ok=True)
    start = time.time()
    deadline = start + 60 * minutes
    timed = (t for t in corpus("train") if time.time() < deadline)
    sae = lens.dictionaries.train(
        model, timed, **ARGS, checkpoint=WORK / "ckpt", checkpoint_every=10, progress=True
    )
    sae.meta["training"]["wall_seconds_this_run"] = round(time.time() - start, 1)
    sae.meta["training"]["wall_budget_minutes"] = minutes
    lens.dictionaries.save(sae, WORK / "sae")
    print("saved", WORK / "sae")


def _trained(model):
    """The finished SAE, or (when training was stopped for time) the last checkpoint's
    state, folded the same way; its record says how many steps it had."""
    if (WORK / "sae").is_dir():
        return lens.dictionaries.load(WORK / "sae")
    from lens.dictionaries.training import Trainer
    from lens.dictionaries.training_run import CHECKPOINT_FORMAT
    from lens.stats.checkpoint import load_tensors

    tensors, meta = load_tensors(WORK / "ckpt", CHECKPOINT_FORMAT)
    init = lens.dictionaries.random_sae(
        model, site=ARGS["site"], layer=ARGS["layer"], n_latents=ARGS["n_latents"], k=ARGS["k"]
    )
    trainer = Trainer(init)
    if tensors["param.W_enc"].shape[0] == init.d_in:  # written before the encoder was stored
        tensors["param.W_enc"] = tensors["param.W_enc"].T.contiguous()  # [d_sae, d_in]
        for key in ("exp_avg", "exp_avg_sq"):
            tensors[f"adam.W_enc.{key}"] = tensors[f"adam.W_enc.{key}"].T.contiguous()
    trainer.restore(tensors)
    scales = tensors["scales"]
    rec = {
        **ARGS,
        "steps": meta["steps_done"],
        "planned_steps": ARGS["steps"],
        "tokens": meta["steps_done"] * ARGS["batch_size"],
        "stopped_early": True,
        "seconds_reading": meta["seconds"][0],
        "seconds_updating": meta["seconds"][1],
        "log": meta["log"],
        "last": meta["log"][-1] if meta["log"] else {},
    }
    return trainer.result(float(scales[0]), float(scales[1]), {"training": rec})


def report() -> None:
    from lens.dictionaries.inspection import feature_cards, find_features, plot_card

    torch.set_num_threads(1)
    model = lens.load_model("smollm2-135m-instruct")
    sae = _trained(model)
    held, n = [], 0
    for text in corpus("heldout"):
        held.append(text[:EVAL_CHARS])
        n += len(model.tokenizer.encode(held[-1], add_special_tokens=False)) - 1
        if n >= EVAL_TOKENS:
            break
    ev = lens.dictionaries.evaluate(
        model, sae, held, batch_size=8, progress=True, exclude_first=ARGS["exclude_first"]
    )
    (HERE / "evaluation.json").write_text(json.dumps(ev.to_json(), indent=2) + "\n")
    (HERE / "evaluation.md").write_text(ev.table() + "\n")
    found = find_features(model, sae, batch_size=8, code_docs=8)
    # the same search over an untrained dictionary of the same width: the best of 4,608
    # latents separates small sets by chance too, so this is the bar to clear
    baseline = find_features(
        model,
        lens.dictionaries.random_sae(
            model,
            site=ARGS["site"],
            layer=ARGS["layer"],
            n_latents=ARGS["n_latents"],
            k=ARGS["k"],
            seed=1,
        ),
        batch_size=8,
        code_docs=8,
    )
    found["untrained_baseline"] = baseline["best"]
    (HERE / "phenomena.json").write_text(json.dumps(found, indent=2) + "\n")
    cards = HERE / "cards"
    for old in cards.glob("feature_*"):
        old.unlink()
    cards.mkdir(exist_ok=True)
    chosen = [f["feature"] for f in found["best"]][:8]
    for card in feature_cards(model, sae, chosen, held, top=6):
        f = card.feature
        plot_card(card, cards / f"feature_{f}.png")
        (cards / f"feature_{f}.json").write_text(json.dumps(card.to_json(), indent=2) + "\n")
    rec = {k: v for k, v in sae.meta["training"].items() if k != "log"}
    (HERE / "training.json").write_text(
        json.dumps({**rec, "log": sae.meta["training"]["log"]}, indent=2) + "\n"
    )
    print(ev.table())


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(float(sys.argv[2]))
    else:
        report()
