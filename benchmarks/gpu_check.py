"""GPU check: SmolLM2 in bfloat16 on a GPU against the same model in float32 on the CPU.

Checks the logit lens, two interventions (neuron deactivation, direction ablation) and, when
``lens.patching`` is installed, an activation-patching sweep, each within a stated tolerance of
the CPU float32 reference; prints speed ratios (CPU float32 time / device bfloat16 time, medians
of interleaved runs in this one process) and the device's peak memory.

Run on a machine with a CUDA GPU::

    python -m benchmarks.gpu_check                       # SmolLM2 (needs its cached folder)
    python -m benchmarks.gpu_check --model /path/to/hf/folder
    python -m benchmarks.gpu_check --device cpu --model ../shared/assets/stories260k  # dry run

Without a GPU (and without ``--device cpu``) it prints why and exits 0. Exit 1 when a check
fails. SmolLM2 loads offline from lens's cache (``lens.smollm2.smollm2_folder``); on a machine
without network, copy that folder there and pass it with ``--model``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

# bf16 keeps 8 mantissa bits: next-token probabilities within 0.05 (measured <= 0.017 on
# stories260k on CPU), patching metrics within 5 % of their float32 range.
PROB_TOL = 0.05
PATCH_REL_TOL = 0.05


def capital_facts() -> list[Any]:
    """English capital facts from lens's built-in dataset."""
    from lens.data import load_builtin

    return [r for r in load_builtin("facts").by_language("en") if r.relation == "capital"]


def patching_pairs(tokenizer: Any, n: int) -> list[tuple[str, str, int, int]]:
    """(clean, corrupt, answer id, wrong id): capital prompts of equal token length, country
    swapped; answers are the capitals' first tokens in context."""

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    by_length: dict[int, list[tuple[str, int]]] = {}
    for fact in capital_facts():
        prompt_ids = ids(fact.prompt)
        answer_id = ids(f"{fact.prompt} {fact.object}")[len(prompt_ids)]  # first answer token
        by_length.setdefault(len(prompt_ids), []).append((fact.prompt, answer_id))
    pairs = []
    for group in by_length.values():
        pairs += [(a[0], b[0], a[1], b[1]) for a, b in zip(group, group[1:]) if a[1] != b[1]]
    return pairs[:n]


def timed(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def compare(name: str, ref_fn, dev_fn, device: str, repeats: int, diff) -> dict[str, Any]:
    """Run both sides (interleaved after a warm-up), return max difference and speed ratio."""
    ref, dev = ref_fn(), dev_fn()  # warm-up, and the values compared
    ratios = []
    for _ in range(repeats):
        _, t_ref = timed(ref_fn, "cpu")
        _, t_dev = timed(dev_fn, device)
        ratios.append(t_ref / t_dev)
    return {"check": name, "max_diff": diff(ref, dev), "speedup": statistics.median(ratios)}


def last_probs(model: Any, prompts: list[str], interventions=()) -> torch.Tensor:
    import lens

    device = str(next(model.parameters()).device)
    b = lens.tokens.batch(model, prompts, device=device)
    with torch.no_grad(), lens.apply(model, interventions=interventions):
        logits = model(b.tokens, attention_mask=b.attention_mask)
    rows = torch.arange(len(b), device=logits.device)
    return torch.softmax(logits.float(), -1)[rows, b.last_positions.to(logits.device)].cpu()


def relation_direction(model: Any, n: int, layer: int) -> torch.Tensor:
    """Difference of mean last-token residuals (input of ``layer``) between "capital" and
    "language" prompts: a direction the model uses, as in a diff-in-means study."""
    import lens
    from lens.data import load_builtin

    facts = load_builtin("facts").by_language("en")
    means = []
    for relation in ("capital", "language"):
        prompts = [r.prompt for r in facts if r.relation == relation][:n]
        b = lens.tokens.batch(model, prompts)
        with torch.no_grad():
            h = model(b.tokens, attention_mask=b.attention_mask, stop_at_layer=layer)
        means.append(h[torch.arange(len(b)), b.last_positions].float().mean(0))
    return means[0] - means[1]


def prob_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def run_checks(ref: Any, dev: Any, device: str, n: int, repeats: int) -> list[dict[str, Any]]:
    import lens
    from interventions import DirectionAblation, NeuronDeactivation

    prompts = [f.prompt for f in capital_facts()[:n]]
    rows = []
    rows.append(
        compare(
            "forward (next-token probs)",
            lambda: last_probs(ref, prompts),
            lambda: last_probs(dev, prompts),
            device,
            repeats,
            prob_diff,
        )
    )
    targets = last_probs(ref, prompts).argmax(-1).tolist()
    lens_args = dict(top_k=5, targets=targets, progress=False)

    def lens_on(model):
        b = lens.tokens.batch(model, prompts, device=str(next(model.parameters()).device))
        return lens.logit_lens(model, b, **lens_args).target_probs

    rows.append(
        compare(
            "logit lens (target probs, all layers)",
            lambda: lens_on(ref),
            lambda: lens_on(dev),
            device,
            repeats,
            lambda a, b: float(abs(a - b).max()),
        )
    )
    n_layers, d_mlp = ref.cfg.n_layers, ref.cfg.d_mlp
    # every 7th neuron of every layer: a large, known-size perturbation
    neurons = NeuronDeactivation({layer: list(range(0, d_mlp, 7)) for layer in range(n_layers)})
    ablation = DirectionAblation(relation_direction(ref, n, n_layers // 2))
    for name, spec in (("neuron deactivation", neurons), ("direction ablation", ablation)):
        effect = prob_diff(last_probs(ref, prompts), last_probs(ref, prompts, [spec]))
        row = compare(
            f"{name} (next-token probs)",
            lambda spec=spec: last_probs(ref, prompts, [spec]),
            lambda spec=spec: last_probs(dev, prompts, [spec]),
            device,
            repeats,
            prob_diff,
        )
        row["effect"] = effect  # the float32 effect, to compare with the tolerance
        rows.append(row)
    rows.append(patching_row(ref, dev, patching_pairs(ref.tokenizer, 4), device, repeats))
    return rows


def patching_row(ref: Any, dev: Any, pairs, device: str, repeats: int) -> dict[str, Any]:
    name = "activation patching (resid_pre sweep)"
    if importlib.util.find_spec("lens.patching") is None:
        return {"check": name, "skipped": "lens.patching is not in this checkout"}
    from lens.patching import activation_patching

    if not pairs:
        return {"check": name, "skipped": "no clean/corrupt pair of equal token length"}
    clean, corrupt, answer, wrong = (list(x) for x in zip(*pairs))

    def sweep(model):
        res = activation_patching(
            model, clean, corrupt, answer=answer, wrong=wrong, sites=("resid_pre",), progress=False
        )
        return res.raw["resid_pre"].float().cpu()

    def rel(a, b):
        return float((a - b).abs().max() / (a.max() - a.min()).clamp_min(1e-6))

    return compare(name, lambda: sweep(ref), lambda: sweep(dev), device, repeats, rel)


def tolerance(row: dict[str, Any]) -> float:
    return PATCH_REL_TOL if row["check"].startswith("activation patching") else PROB_TOL


def report(rows: list[dict[str, Any]], device: str) -> bool:
    ok = True
    print(f"{'check':42} {'max diff':>9} {'tol':>6} {'fp32 effect':>11} {'speedup':>8}  result")
    for row in rows:
        if "skipped" in row:
            print(f"{row['check']:42} {'':>9} {'':>6} {'':>11} {'':>8}  SKIP ({row['skipped']})")
            continue
        good = row["max_diff"] <= tolerance(row)
        # an intervention that does nothing would agree trivially: it must move the output
        meaningful = row.get("effect", float("inf")) > tolerance(row)
        ok &= good and meaningful
        effect = f"{row['effect']:.4f}" if "effect" in row else ""
        verdict = "ok" if good and meaningful else ("FAIL" if not good else "WEAK (no effect)")
        print(
            f"{row['check']:42} {row['max_diff']:9.4f} {tolerance(row):6.2f} {effect:>11} "
            f"{row['speedup']:7.1f}x  {verdict}"
        )
    print("speedup = CPU float32 time / " + device + " bfloat16 time (median of interleaved runs)")
    if device.startswith("cuda"):
        print(f"peak {device} memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="lens.load_model source")
    parser.add_argument("--device", default="cuda", help="device for the bf16 model")
    parser.add_argument("--prompts", type=int, default=16, help="number of prompts")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per check")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA GPU here; nothing to check. Run it on a GPU machine "
            "(or pass --device cpu for a dry run of the script on the CPU)."
        )
        return 0
    import lens

    print(f"gpu_check: {args.model}, float32 on cpu vs bfloat16 on {args.device}")
    ref = lens.load_model(args.model, device="cpu")
    dev = lens.load_model(args.model, device=args.device, dtype=torch.bfloat16)
    torch.manual_seed(0)
    ok = report(run_checks(ref, dev, args.device, args.prompts, args.repeats), args.device)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
