"""Peers: the same logit-lens and neuron-ablation workloads in nnsight / nnterp, on the same
Hugging Face folder, as ratios to lens (lens = 1.00; above 1 means the peer is slower).

Needs ``pip install 'lens-interp[peers]'``; without it every row says why it was skipped.
Each peer row also reports whether its answer agrees with lens (top-1 ids at every layer for
the logit lens, the argmax of the final logits for the ablation), so a fast wrong answer
cannot pass as a win.

Workloads, batch of 8 prompts:
    * logit lens: last position, every layer, top-10 (nnterp's ``logit_lens``; lens.logit_lens);
    * neuron ablation: 16 MLP neurons zeroed at every layer, final logits (nnsight trace that
      edits ``mlp.down_proj.input``; lens.apply + NeuronDeactivation).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

import lens
from benchmarks.harness import interleaved
from interventions import NeuronDeactivation

PROMPTS = [
    "Once upon a time there was a",
    "The little dog ran to the",
    "She looked at the sky and",
    "Tom and Lily went to the park to",
    "The big red ball was",
    "One day, a bird",
    "Mom said that the cake",
    "They played all day until",
]


def _folders(quick: bool) -> dict[str, Path]:
    from lens import smollm2

    found: dict[str, Path] = {}
    try:
        from lens.organism import shipped_path

        found["organism"] = shipped_path()
    except (ImportError, FileNotFoundError):
        pass
    stories = Path(__file__).resolve().parents[2] / "shared" / "assets" / "stories260k"
    if not found and (stories / "config.json").is_file():
        found["stories260k"] = stories
    if not quick and smollm2.available():
        found["smollm2-135m-instruct"] = smollm2.smollm2_folder(download=False)
    return found


def _missing() -> str | None:
    for name in ("nnsight", "nnterp"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed (pip install 'lens-interp[peers]')"
    return None


def _workloads(name: str, folder: Path, rounds: int) -> list[dict[str, Any]]:
    from nnterp import StandardizedTransformer
    from nnterp.interventions import logit_lens as nnterp_logit_lens

    model = lens.load_model(folder)
    peer = StandardizedTransformer(str(folder), device_map="cpu")
    # Both sides get the same left-padded token ids and mask (BOS by lens's per-model default).
    b = lens.tokens.batch(model, PROMPTS, padding_side="left")
    texts = {"input_ids": b.tokens, "attention_mask": b.attention_mask}
    n = model.cfg.n_layers
    idx = torch.randperm(model.cfg.d_mlp, generator=torch.Generator().manual_seed(0))[:16]
    ablation = NeuronDeactivation({layer: idx.tolist() for layer in range(n)})

    @torch.no_grad()
    def lens_lens() -> Any:
        return lens.logit_lens(model, b, positions="last", top_k=10).top_ids

    @torch.no_grad()
    def peer_lens() -> Any:
        return nnterp_logit_lens(peer, texts).topk(10, dim=-1).indices  # [batch, layers, k]

    @torch.no_grad()
    def lens_ablate() -> Any:
        with lens.apply(model, interventions=[ablation]):
            return model(b.tokens, attention_mask=b.attention_mask)[:, -1]

    @torch.no_grad()
    def peer_ablate() -> Any:
        with peer.trace(texts):
            for layer in range(n):
                mlp_in = peer.mlps[layer].down_proj.input
                mlp_in[:, :, idx] = 0
            logits = peer.logits.save()
        return logits[:, -1]

    ours, theirs = lens_lens(), peer_lens()  # [layers, batch, 1, k] vs [batch, layers, k]
    lens_agree = float((ours[:, :, 0, 0].T == theirs[:, :, 0]).float().mean())
    ablate_agree = float((lens_ablate().argmax(-1) == peer_ablate().argmax(-1)).float().mean())
    rows = []
    for work, (ours_fn, peer_fn, agree, peer_name) in {
        "logit lens last, top-10": (lens_lens, peer_lens, lens_agree, "nnterp.logit_lens"),
        "16 neurons zeroed per layer": (lens_ablate, peer_ablate, ablate_agree, "nnsight trace"),
    }.items():
        cases = {"lens": ours_fn, peer_name: peer_fn}
        for row in interleaved(cases, baseline="lens", rounds=rounds):
            rows.append(
                {
                    "suite": "peers",
                    "model": name,
                    **row,
                    "case": f"{work}: {row['case']}",
                    "top1_agreement_with_lens": agree if row["case"] != "lens" else 1.0,
                    "target": "info",
                }
            )
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    reason = _missing()
    folders = _folders(quick)
    if reason is None and not folders:
        reason = "no Hugging Face folder available (organism not shipped, stories260k absent)"
    if reason is not None:
        return [{"suite": "peers", "case": "peers", "skipped": reason}]
    rows = []
    for name, folder in folders.items():
        rows += _workloads(name, folder, rounds=3 if quick else 10)
    return rows


if __name__ == "__main__":
    from benchmarks.harness import markdown_table

    torch.set_num_threads(1)
    print(
        markdown_table(
            run(quick=True),
            ["model", "case", "ratio_median", "ratio_min", "ratio_max", "top1_agreement_with_lens"],
        )
    )
