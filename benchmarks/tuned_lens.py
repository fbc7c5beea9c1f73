"""Tuned-lens cost: decoding through translators vs the plain logit lens, and training
throughput vs one forward + backward of the model on the same tokens.

Random llama bridge shaped like SmolLM2-135M (``--quick``: stories260k-shaped). Each ratio is
measured side by side in one run (interleaved rounds after a warm-up, median of per-round
ratios) against its own baseline:

    tuned lens last      lens.logit_lens(positions="last", translator=tl) / the same without
    tuned lens all       the same at every position
    train step           one lens.tuned_lens training step (capture, per-layer KL, backward into
                         the translators, all-reduce, clip, SGD) on 2 x 64 tokens (quick: 8 x 64)
                         / forward + backward of the model's own next-token loss on them;
                         rows also give tokens_per_s of both

    python -m benchmarks.tuned_lens [--quick]
"""

from __future__ import annotations

import argparse
import json
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
from lens.tuned_lens import training
from lens.tuned_lens.translators import TunedLens

TARGETS = {"tuned lens last": "<= 1.05x", "tuned lens all": "(reported)"}


def setup(quick: bool) -> tuple[Any, torch.Tensor, TunedLens]:
    shape = STORIES_SHAPE if quick else SMOLLM2_SHAPE
    model = lens.load_model(lens.tiny_config("llama", **shape))
    batch, seq = (8, 64)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, shape["d_vocab"], (batch, seq), generator=gen)
    tl = TunedLens.identity(model)
    d = shape["d_model"]
    for m in tl.maps:  # not the identity: a dense map like a trained one
        m.weight = torch.eye(d) + 0.01 * torch.randn(d, d, generator=gen)
        m.bias = 0.01 * torch.randn(d, generator=gen)
    return model, tokens, tl


def decode_rows(model: Any, tokens: torch.Tensor, tl: TunedLens, rounds: int) -> list[dict]:
    rows = []
    for positions in ("last", "all"):

        def plain(positions: str = positions) -> Any:
            return lens.logit_lens(model, tokens, positions=positions, top_k=10)

        def tuned(positions: str = positions) -> Any:
            return lens.logit_lens(model, tokens, positions=positions, top_k=10, translator=tl)

        cases = {f"logit lens {positions}": plain, f"tuned lens {positions}": tuned}
        with torch.no_grad():
            timed = interleaved(cases, baseline=f"logit lens {positions}", rounds=rounds, warmup=1)
        rows.append(timed[1])
    return rows


def training_row(model: Any, tokens: torch.Tensor, tl: TunedLens, rounds: int) -> dict:
    steps = [t.tolist() for t in tokens]
    n_tokens = tokens.numel()
    params = [torch.nn.Parameter(t.clone()) for m in tl.maps for t in (m.weight, m.bias)]
    opt = torch.optim.SGD(params, lr=1.0, momentum=0.9, nesterov=True)

    def forward_backward() -> None:
        logits = model(tokens)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)
        )
        loss.backward()
        model.zero_grad(set_to_none=True)

    def train_step() -> None:
        training._step(model, tl.layers, tl.site, params, opt, steps, 1.0, 0, 1, "cpu")

    cases = {"forward + backward": forward_backward, "train step": train_step}
    row = interleaved(cases, baseline="forward + backward", rounds=rounds, warmup=1)[1]
    row["tokens_per_s"] = n_tokens / row["seconds_median"]
    row["baseline_tokens_per_s"] = n_tokens / row["baseline_seconds_median"]
    return row


def run(quick: bool = False) -> list[dict[str, Any]]:
    """One row per case: ``ratio_median`` etc. to that case's baseline (see module doc).

    Example:
        >>> from benchmarks.tuned_lens import run
        >>> rows = run(quick=True)  # doctest: +SKIP
    """
    model, tokens, tl = setup(quick)
    rounds = 5 if quick else 3
    train_tokens = tokens if quick else tokens[:2]  # 2 x 64 tokens: ~10 s a step on 1 core
    rows = decode_rows(model, tokens, tl, rounds) + [training_row(model, train_tokens, tl, rounds)]
    shape = "stories260k-shaped" if quick else "smollm2-135m-shaped"
    for row in rows:
        size = train_tokens.shape if row["case"] == "train step" else tokens.shape
        row.update(
            suite="tuned_lens",
            name=row["case"],
            model=f"{shape}, {size[0]}x{size[1]}",
            target=TARGETS.get(row["case"], ""),
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stories260k shape (seconds)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = run(quick=args.quick)
    columns = ["case", "ratio_median", "ratio_min", "ratio_max", "seconds_median", "target"]
    print(json.dumps(machine_info()))
    print(markdown_table(rows, columns + ["tokens_per_s", "baseline_tokens_per_s"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
