"""Precision@1 of the next token per layer: logit lens, tuned lens and the identity patchscope
(Ghandeharioun et al. 2024, section 4.1) on the same held-out positions.

For each position of each held-out document, the reference is the model's own top-1 next
token (its final layer). Per layer, each method decodes the residual stream after that layer
(``resid_post``) at that position; Precision@1 is the share of positions where its top-1
equals the reference. The identity patchscope writes the state into the same layer of a
few-shot "repeat the token" prompt at its final ``?`` and reads the next token there.

    python docs/results/patchscope_precision/precision_at_1.py organism [--docs 40 --per-doc 8]
    python docs/results/patchscope_precision/precision_at_1.py smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import lens
from lens.patchscope import Target, patchscope

HERE = Path(__file__).parent


def corpus(source: str, n: int) -> list[str]:
    if source == "organism":
        from lens.tuned_lens.organism import organism_corpus

        return organism_corpus("heldout", n)
    from lens.tuned_lens.corpora import samples_corpus

    return samples_corpus("heldout")[:n]


def identity_target(source: str) -> Target:
    if source == "organism":  # its word-level tokenizer knows neither '->' nor 'cat'
        return Target("oslo oslo . sofia sofia . PILOT PILOT . ?", -1, name="identity")
    return lens.patchscope.identity()


def run(source: str, docs: int, per_doc: int, max_tokens: int) -> dict:
    torch.manual_seed(0)
    model = lens.load_model(source)
    tuned = lens.tuned_lens.load("organism") if source == "organism" else None
    n_layers = model.cfg.n_layers
    target = identity_target(source)
    rng = np.random.default_rng(0)
    hits = {m: np.zeros(n_layers) for m in ("logit lens", "tuned lens", "identity patchscope")}
    total = 0
    start = time.perf_counter()
    for text in corpus(source, docs):
        ids = lens.tokens.batch(model, [text]).tokens[0, :max_tokens].tolist()
        picked = rng.choice(np.arange(1, len(ids)), min(per_doc, len(ids) - 1), replace=False)
        positions = sorted(int(p) for p in picked)
        with torch.no_grad():
            final = model(torch.tensor([ids]))[0].argmax(-1)
        ll = lens.logit_lens(model, [ids], top_k=1, positions=list(positions))
        for row, pos in enumerate(positions):
            want = int(final[pos])
            hits["logit lens"] += ll.top_ids[:, 0, row, 0] == want
            ps = patchscope(model, ids[: pos + 1], target=target, top_k=1)
            hits["identity patchscope"] += ps.top_ids[:, 0] == want
        if tuned is not None:
            tl = lens.logit_lens(model, [ids], top_k=1, positions=list(positions), translator=tuned)
            for row, pos in enumerate(positions):
                hits["tuned lens"] += tl.top_ids[:, 0, row, 0] == int(final[pos])
        total += len(positions)
    if tuned is None:
        del hits["tuned lens"]
    return {
        "model": source,
        "positions": total,
        "documents": docs,
        "identity_prompt": target.prompt,
        "seconds": round(time.perf_counter() - start, 1),
        "precision_at_1": {m: (h / total).round(4).tolist() for m, h in hits.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--per-doc", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    torch.set_num_threads(1)
    record = run(args.source, args.docs, args.per_doc, args.max_tokens)
    name = args.source.split("-")[0]
    (HERE / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
