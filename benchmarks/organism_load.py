"""How fast the shipped organism loads and runs, next to stories260k (another tiny HF Llama
folder on the same boot_transformers path), measured side by side in one process.

Run: ``python -m benchmarks.organism_load [--repeats 5]``. Prints a table of medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import lens

STORIES = Path(__file__).resolve().parents[2] / "shared" / "assets" / "stories260k"


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sources = {"organism": "organism", "organism ckpt 0": None}
    if (STORIES / "config.json").is_file():
        sources["stories260k"] = str(STORIES)
    rows = []
    for name, src in sources.items():
        if src is None:
            load = lambda: lens.load_model("organism", checkpoint=0)  # noqa: E731
        else:
            load = lambda src=src: lens.load_model(src)  # noqa: E731
        load_s = _time(load, args.repeats)
        model = load()
        prompts = ["the job of alice is"] * 64 if name.startswith("organism") else ["Once"] * 64
        b = lens.tokens.batch(model, prompts)
        with torch.no_grad():
            fwd_s = _time(lambda m=model, b=b: m(b.tokens, attention_mask=b.attention_mask), 10)
        params = sum(p.numel() for p in model.parameters())
        rows.append((name, params, load_s, fwd_s * 1000))
    print(f"{'model':<18}{'params':>10}{'load s':>9}{'fwd64 ms':>10}")
    for name, params, load_s, fwd in rows:
        print(f"{name:<18}{params:>10,}{load_s:>9.2f}{fwd:>10.1f}")


if __name__ == "__main__":
    main()
