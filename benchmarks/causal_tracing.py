"""Causal tracing: lens.patching.causal_trace vs a plain-transformers ROME loop, same noise.

The reference is ROME's procedure written out here with transformers alone (the model loaded
from the same HF folder, forward hooks on its modules): per prompt, one forward per
(kind, layer, position) cell over ``samples + 1`` rows (row 0 clean, rows 1.. noised; the
restored states copied from row 0, as ROME's ``trace_with_patch`` does), windows clipped as
in ROME, sigma = 3 x the std of the subjects' token embeddings (read from the HF embedding
matrix). Both use the same draws (``torch.randn(samples, subject_tokens, d_model)`` seeded),
so the numbers must agree: ``max_abs_diff`` is over every cell of every kind, including the
cells lens fills without running them.

Shapes: ``--quick`` stories260k (5 layers) when present, else a random tiny Llama folder;
the full run adds a random Llama shaped like SmolLM2-135M (30 layers, d_model 576, 9 heads /
3 KV heads, vocab 49152) saved with transformers' ``LlamaConfig``. Times are measured side by
side in one process (interleaved rounds; one round at the full shape).

    python -m benchmarks.causal_tracing [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import lens
from benchmarks.harness import SMOLLM2_SHAPE, STORIES_SHAPE, machine_info, markdown_table
from lens.patching import causal_trace

STORIES = Path(__file__).resolve().parents[2] / "shared" / "assets" / "stories260k"
KINDS = ("resid", "mlp", "attn")


def random_folder(folder: Path, shape: dict[str, int], seed: int = 0) -> Path:
    """A random Llama HF folder of ``shape`` (lens harness keys), built with LlamaConfig, with
    stories260k's tokenizer when present, else a word-level one."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=shape["d_vocab"], hidden_size=shape["d_model"],
        intermediate_size=shape["d_mlp"], num_hidden_layers=shape["n_layers"],
        num_attention_heads=shape["n_heads"], num_key_value_heads=shape["n_key_value_heads"],
        head_dim=shape["d_head"], max_position_embeddings=shape["n_ctx"], bos_token_id=1,
        eos_token_id=2, tie_word_embeddings=False,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return folder


def _tokenizer() -> Any:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (STORIES / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(STORIES)
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i + 3 for i in range(253)}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def workload(vocab: int, n_prompts: int, seq: int) -> dict[str, Any]:
    """Token-id prompts (a BOS-like first token, random ids), subjects at positions 2..4."""
    gen = torch.Generator().manual_seed(1)
    prompts = [[1] + torch.randint(3, min(vocab, 500), (seq - 1,), generator=gen).tolist()
               for _ in range(n_prompts)]  # fmt: skip
    subjects = [[2, 3, 4] for _ in prompts]
    return dict(prompts=prompts, subjects=subjects, noise_from=[p[2:5] for p in prompts])


# --- the reference: ROME's loop with plain transformers ---------------------------------


def _window(layer: int, window: int, n_layers: int) -> range:
    return range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2)))


def _replace_rows(pos: int) -> Any:
    """A forward hook writing row 0's value at ``pos`` into every other row (ROME)."""

    def hook(module: Any, args: Any, output: Any) -> Any:
        h = output[0] if isinstance(output, tuple) else output
        h[1:, pos] = h[0, pos]
        return output

    return hook


@torch.no_grad()
def rome_loop(hf: Any, work: dict[str, Any], *, samples: int, window: int, seed: int = 0) -> dict:
    """ROME's causal tracing with transformers only: per cell one forward of
    ``samples + 1`` rows. Returns ``restored`` (kind -> [prompt, layer, pos]), ``corrupt``
    ([prompt]) and ``sigma`` (3 x the std of the subjects' rows of the embedding matrix)."""
    weights = hf.model.embed_tokens.weight[[i for s in work["noise_from"] for i in s]]
    sigma = 3.0 * float(weights.float().std())
    out: dict[str, Any] = {k: [] for k in KINDS}
    corrupt = []
    for prompt, subject in zip(work["prompts"], work["subjects"]):
        grids, noised = _rome_prompt(hf, prompt, subject, sigma, samples, window, seed)
        corrupt.append(noised)
        for kind in KINDS:
            out[kind].append(grids[kind])
    restored = {k: torch.stack(v) for k, v in out.items()}
    return {"restored": restored, "corrupt": corrupt, "sigma": sigma}


def _rome_prompt(
    hf: Any, prompt: list[int], subject: list[int], sigma: float, samples: int, window: int,
    seed: int,
) -> tuple[dict[str, torch.Tensor], float]:  # fmt: skip
    layers, embed = hf.model.layers, hf.model.embed_tokens
    n_layers = len(layers)
    toks = torch.tensor([prompt]).repeat(samples + 1, 1)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(samples, len(subject), embed.weight.shape[1], generator=gen) * sigma
    answer = int(hf(toks[:1]).logits[0, -1].argmax())  # the clean run's top token

    def add_noise(module: Any, args: Any, output: Any) -> Any:
        output[1:, subject] += noise.to(output.dtype)
        return output

    def prob(hooks: list[tuple[Any, Any]]) -> float:
        handles = [m.register_forward_hook(fn) for m, fn in [(embed, add_noise), *hooks]]
        try:
            logits = hf(toks).logits[:, -1].float()
        finally:
            for h in handles:
                h.remove()
        return float(logits[1:].softmax(-1)[:, answer].mean())

    grids = {}
    for kind in KINDS:
        grid = torch.zeros(n_layers, len(prompt), dtype=torch.float64)
        for layer in range(n_layers):
            if kind == "resid":
                mods = [layers[layer]]
            else:
                part = "mlp" if kind == "mlp" else "self_attn"
                mods = [getattr(layers[i], part) for i in _window(layer, window, n_layers)]
            for pos in range(len(prompt)):
                grid[layer, pos] = prob([(m, _replace_rows(pos)) for m in mods])
        grids[kind] = grid
    return grids, prob([])


# --- the comparison -----------------------------------------------------------------------


def compare(folder: Path, label: str, work: dict[str, Any], *, samples: int, window: int,
            rounds: int) -> dict[str, Any]:  # fmt: skip
    """Time lens and the ROME loop side by side (interleaved rounds) on one folder."""
    from transformers import AutoModelForCausalLM

    model = lens.load_model(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    times: dict[str, list[float]] = {"lens": [], "rome": []}
    res: dict[str, Any] = {}
    for _ in range(rounds):
        start = time.perf_counter()
        res["lens"] = causal_trace(
            model, work["prompts"], work["subjects"], kinds=KINDS, window=window,
            noise_from=work["noise_from"], samples=samples, progress=False,
        )  # fmt: skip
        times["lens"].append(time.perf_counter() - start)
        start = time.perf_counter()
        res["rome"] = rome_loop(hf, work, samples=samples, window=window)
        times["rome"].append(time.perf_counter() - start)
    ours, ref = res["lens"], res["rome"]
    diff = max(float((ours.restored[k] - ref["restored"][k]).abs().max()) for k in KINDS)
    diff = max(diff, float((ours.corrupt_prob - torch.tensor(ref["corrupt"])).abs().max()))
    peak = max(float(ours.restored[k].max()) for k in KINDS)
    skipped = sum(int(ours.skipped[k].sum()) for k in KINDS)
    total = sum(ours.skipped[k].numel() for k in KINDS)
    ratios = [r / t for r, t in zip(times["rome"], times["lens"])]
    return {
        "case": f"ROME loop / lens causal_trace (max abs diff {diff:.1e})",
        "model": label,
        "workload": f"{len(work['prompts'])} prompt(s) x {len(work['prompts'][0])} tokens x "
        f"{len(KINDS)} kinds x {model.cfg.n_layers} layers x {samples} samples, window {window}",
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "seconds_median": statistics.median(times["lens"]),
        "rome_loop_seconds": statistics.median(times["rome"]),
        "max_abs_diff": f"{diff:.1e}",
        "largest_prob": f"{peak:.2g}",
        "sigma_diff": f"{abs(ours.sigma - ref['sigma']):.1e}",
        "cells_filled_not_run": f"{skipped}/{total}",
        "rounds": rounds,
        "target": ">= 3x (ROME loop time / lens time), same numbers",
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Rows: lens vs the ROME loop on the quick shape and (full run) the SmolLM2 shape."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if (STORIES / "config.json").is_file():
            small, small_label = STORIES, "stories260k"
        else:
            small = random_folder(Path(tmp) / "tiny", STORIES_SHAPE)
            small_label = "random tiny llama (stories260k shape)"
        work = workload(512, 1, 8) if quick else workload(512, 2, 10)
        rows.append(compare(small, small_label, work, samples=2 if quick else 3, window=2,
                            rounds=2 if quick else 5))  # fmt: skip
        if not quick:
            big = random_folder(Path(tmp) / "smol", SMOLLM2_SHAPE)
            rows.append(compare(big, "random llama, SmolLM2-135M shape",
                                workload(SMOLLM2_SHAPE["d_vocab"], 1, 8), samples=3,
                                window=10, rounds=1))  # fmt: skip
    for row in rows:
        row["suite"] = "causal_tracing"
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small model only (seconds)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = run(quick=args.quick)
    columns = ["model", "workload", "seconds_median", "rome_loop_seconds", "ratio_median",
               "ratio_min", "ratio_max", "max_abs_diff", "largest_prob", "sigma_diff",
               "cells_filled_not_run", "target"]  # fmt: skip
    print(json.dumps(machine_info()))
    print(markdown_table(rows, columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
