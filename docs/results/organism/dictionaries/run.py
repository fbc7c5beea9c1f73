"""Sparse dictionaries against the organism's ground truth (issue #20, item 7b).

A TopK SAE is trained on the residual stream after block 3 (of 6) of the organism and of the
planted organism, on the organism's own training distribution (``DocumentSampler``), and
scored on documents of another seed: per known token property the best latent's per-token
AUROC, and on the planted organism the largest |cos| between a decoder row and each planted
direction, each next to an untrained dictionary of the same width.

    PYTHONPATH=. python docs/results/organism/dictionaries/run.py   # ~1-3 min of one CPU core
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

import lens
from lens.dictionaries.organism_truth import (
    planted_recovery,
    property_aurocs,
    token_activations,
    token_properties,
    truth_directions,
)
from lens.organism import world as organism_world
from lens.organism.documents import DocumentSampler
from lens.organism.planted import planted_folder

HERE = Path(__file__).resolve().parent
ARGS = {
    "site": "resid_post",
    "layer": 3,
    "n_latents": 768,  # 8 x d_model of the organism (96)
    "k": 8,
    "batch_size": 512,
    "buffer_tokens": 8192,
    "max_length": 64,
    "rows_per_forward": 32,
    "seed": 0,
}
TRAIN_DOCS, EVAL_DOCS = 6000, 800


def texts(world, n: int, seed: int) -> list[str]:
    sampler = DocumentSampler(world, seed=seed)
    return [" ".join(sampler.sample()) for _ in range(n)]


def summarise(scores: dict) -> dict:
    """Mean and min best-latent AUROC per group of properties."""
    groups: dict[str, list[float]] = {}
    for name, s in scores.items():
        groups.setdefault(name.split("=")[0], []).append(float(s["auroc"]))
    return {
        g: {"n": len(v), "mean": round(statistics.mean(v), 4), "min": round(min(v), 4)}
        for g, v in groups.items()
    }


def residuals(model, docs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(token ids, residual at the SAE's site) of every non-special token of ``docs``."""
    from lens.dictionaries.encode import read_sites
    from lens.tokens import batch as make_batch

    hook = f"blocks.{ARGS['layer']}.hook_{ARGS['site']}"
    special = set(model.tokenizer.all_special_ids)
    ids, xs = [], []
    for i in range(0, len(docs), 64):
        b = make_batch(model, docs[i : i + 64], padding_side="right")
        (x,) = read_sites(model, b, [hook], ARGS["layer"])
        keep = b.attention_mask.bool()
        for s in special:
            keep &= b.tokens != s
        ids.append(b.tokens[keep])
        xs.append(x[keep].float())
    return torch.cat(ids), torch.cat(xs)


def probe_reference(model, world, props: dict) -> dict:
    """The same per-token AUROC for a linear read-out: the difference of class means on the
    training documents' residuals, scored on the held-out ones (is the property linearly
    there at all?)."""
    from lens.dictionaries.inspection import auroc

    t_ids, t_x = residuals(model, texts(world, 1500, seed=0))
    h_ids, h_x = residuals(model, texts(world, EVAL_DOCS, seed=1))
    out = {}
    for name, mask in props.items():
        on, hon = mask[t_ids], mask[h_ids]
        if int(on.sum()) < 5 or int(hon.sum()) < 5:
            continue
        w = t_x[on].mean(0) - t_x[~on].mean(0)
        score = (h_x @ w)[:, None]
        out[name] = round(float(auroc(score[hon], score[~hon])[0]), 4)
    return out


def one(name: str, world) -> dict:
    model = lens.load_model(name)
    start = time.process_time()
    sae = lens.dictionaries.train(model, texts(world, TRAIN_DOCS, seed=0), **ARGS, progress=False)
    cpu = time.process_time() - start
    control = lens.dictionaries.random_sae(
        model,
        site=ARGS["site"],
        layer=ARGS["layer"],
        n_latents=ARGS["n_latents"],
        k=ARGS["k"],
        seed=1,
    )
    props = token_properties(world, model.tokenizer)
    heldout = texts(world, EVAL_DOCS, seed=1)
    probe = probe_reference(model, world, props)
    out: dict = {
        "model": name,
        "linear_probe": probe,
        "linear_probe_summary": summarise({k: {"auroc": v} for k, v in probe.items()}),
        "training": {k: v for k, v in sae.meta["training"].items() if k != "log"},
        "training_cpu_seconds": round(cpu, 1),
    }
    for label, d in (("trained", sae), ("untrained", control)):
        toks, acts = token_activations(model, d, heldout)
        scores = property_aurocs(toks, acts, props)
        out[label] = {
            "eval_tokens": int(toks.shape[0]),
            "properties": scores,
            "summary": summarise(scores),
        }
        if world.truth:
            out[label]["planted"] = planted_recovery(d, truth_directions(model, world))
    return out


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    results = [
        one("organism", organism_world()),
        one("organism-planted", organism_world(planted_folder("shared"))),
    ]
    (HERE / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    for r in results:
        print(r["model"], r["training_cpu_seconds"], "s")
        print("  linear probe", json.dumps(r["linear_probe_summary"]))
        for label in ("trained", "untrained"):
            print(" ", label, json.dumps(r[label]["summary"]))
            if "planted" in r[label]:
                print("   ", json.dumps(r[label]["planted"]))


if __name__ == "__main__":
    sys.exit(main())
