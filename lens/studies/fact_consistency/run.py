"""Measuring the fact_consistency study: recall, CLC, checkpoints, linear shortcuts."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lens.studies._organism_data import organism_world, word_ids
from lens.studies.base import jsonable
from lens.studies.fact_consistency.config import Config
from lens.studies.fact_consistency.data import FactConsistencyData
from lens.studies.fact_consistency.findings import findings
from lens.studies.fact_consistency.report import Result
from lens.tokens import batch as make_batch


def clc(correct_l: set[int], correct_pivot: set[int]) -> float | None:
    """``|C_L ∩ C_pivot| / |C_L ∪ C_pivot|`` (None when both sets are empty).

    Example:
        >>> clc({1, 2, 3}, {2, 3, 4})
        0.5
    """
    union = correct_l | correct_pivot
    return len(correct_l & correct_pivot) / len(union) if union else None


def run(model: Any, config: Config) -> Result:
    """Measure recall and CLC on the model, its checkpoints and with shortcuts.

    Example:
        >>> import lens
        >>> from lens.studies import fact_consistency as fc
        >>> model = lens.load_model("organism")                     # doctest: +SKIP
        >>> fc.run(model, fc.quick_config()).save("out/fc")         # doctest: +SKIP
    """
    if not 0.0 < config.fit_fraction < 1.0:
        raise ValueError(f"fit_fraction must be in (0, 1), got {config.fit_fraction}")
    world = organism_world(model, config.organism_folder)
    scripts = _scripts(world, config.scripts)
    rng = random.Random(config.seed)
    facts = list(range(len(world.facts)))
    if config.max_facts is not None and config.max_facts < len(facts):
        facts = sorted(rng.sample(facts, config.max_facts))
    queries = _queries(world, scripts, set(facts))
    data: dict[str, Any] = {
        "pivot": world.pivot,
        "scripts": scripts,
        "facts": facts,
        "n_layers": int(model.cfg.n_layers),
        "heldout": {s: sorted(set(facts) & set(world.heldout.get(s, []))) for s in scripts},
    }
    final = _measure(model, queries, world, config.batch_size)
    data["final"] = _strip(final)
    if config.checkpoints:
        data["training"] = _training(model, queries, world, config, data["final"])
    layers = _shortcut_layers(model, config.shortcut_layers)
    if layers:
        data["shortcut"] = _shortcut_study(
            model, queries, world, facts, layers, config, rng, final["_predictions"]
        )
    typed = FactConsistencyData.from_dict(jsonable(data))
    return Result(
        config=config.to_dict(), model=_label(config), data=typed, findings=findings(typed)
    )


# ---------------------------------------------------------------------- measuring


def _scripts(world: Any, chosen: list[str] | None) -> list[str]:
    if chosen is None:
        return list(world.scripts)
    bad = [s for s in chosen if s not in world.scripts]
    if bad:
        raise ValueError(f"unknown languages/notations {bad}; known: {world.scripts}")
    return [world.pivot] + [s for s in dict.fromkeys(chosen) if s != world.pivot]


def _queries(world: Any, scripts: list[str], facts: set[int]) -> dict[str, list[Any]]:
    from lens.organism import fact_queries

    return {s: [q for q in fact_queries(world, s) if q.fact_index in facts] for s in scripts}


@torch.no_grad()
def _predict_last(
    model: Any, prompts: list[str], batch_size: int, shortcut: Any = None
) -> list[int]:
    """Argmax id at each prompt's last real position; through ``shortcut`` when given."""
    import lens

    if shortcut is None:
        return (
            lens.readout.last_token_logits(model, prompts, batch_size=batch_size)
            .argmax(-1)
            .tolist()
        )
    out: list[int] = []
    for start in range(0, len(prompts), batch_size):
        b = lens.tokens.batch(model, prompts[start : start + batch_size], padding_side="left")
        out += lens.shortcuts.predict(shortcut, model, b, positions="last").argmax(-1).tolist()
    return out


def _measure(
    model: Any,
    queries: dict[str, list[Any]],
    world: Any,
    batch_size: int,
    shortcut: Any = None,
    only: set[int] | None = None,
    given: dict[str, dict[int, int]] | None = None,
) -> dict[str, Any]:
    """Recall (all / trained / held out), ``correct`` sets and CLC per script, on the facts
    in ``only`` (None: all). ``given``: predictions already made (``{script: {fact: id}}``)."""
    correct: dict[str, list[int]] = {}
    recall: dict[str, float] = {}
    split: dict[str, dict[str, float | None]] = {}
    predictions: dict[str, dict[int, int]] = {}
    for s, qs in queries.items():
        qs = [q for q in qs if only is None or q.fact_index in only]
        if given is not None:
            pred = [given[s][q.fact_index] for q in qs]
        else:
            pred = _predict_last(model, [q.prompt for q in qs], batch_size, shortcut)
        gold = word_ids(model, [q.answer for q in qs])
        hit = [p == g for p, g in zip(pred, gold)]
        correct[s] = sorted(q.fact_index for q, h in zip(qs, hit) if h)
        recall[s] = sum(hit) / len(hit) if hit else None
        trained = [h for q, h in zip(qs, hit) if not q.heldout]
        held = [h for q, h in zip(qs, hit) if q.heldout]
        split[s] = {
            "trained": sum(trained) / len(trained) if trained else None,
            "heldout": sum(held) / len(held) if held else None,
        }
        predictions[s] = {q.fact_index: p for q, p in zip(qs, pred)}
    pivot = world.pivot
    clcs = {s: clc(set(correct[s]), set(correct[pivot])) for s in queries if s != pivot}
    others = [recall[s] for s in queries if s != pivot and recall[s] is not None]
    valid = [c for c in clcs.values() if c is not None]
    return {
        "recall": recall,
        "recall_split": split,
        "correct": correct,
        "clc": clcs,
        "mean_recall_others": float(np.mean(others)) if others else None,
        "mean_clc": float(np.mean(valid)) if valid else None,
        "_predictions": predictions,
    }


def _strip(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if not k.startswith("_")}


def _training(
    model: Any, queries: dict[str, list[Any]], world: Any, config: Config, final: dict[str, Any]
) -> dict[str, Any]:
    """Recall and CLC of every saved checkpoint, then of the final model (``model``)."""
    import lens
    from lens import organism

    try:
        steps = organism.checkpoints(config.organism_folder)
    except FileNotFoundError as exc:
        return {"points": [], "note": f"no checkpoints: {exc}"}
    steps = _spread(steps, config.max_checkpoints)
    points = []
    for step in tqdm(steps, desc="checkpoints", disable=not steps):
        ckpt = lens.load_model(
            "organism",
            checkpoint=step,
            folder=config.organism_folder,
            device=next(model.parameters()).device,
        )
        m = _strip(_measure(ckpt, queries, world, config.batch_size))
        points.append({"step": step, "label": f"step {step}", **m})
        del ckpt
    final_step = _final_step(config.organism_folder)
    label = f"final (step {final_step})" if final_step is not None else "final"
    x = final_step if final_step is not None else (steps[-1] + 1 if steps else 0)
    points.append({"step": x, "label": label, **_strip(final)})
    return {"points": points}


def _spread(steps: list[int], n: int | None) -> list[int]:
    """At most ``n`` of ``steps``, evenly spaced, first and last kept."""
    if n is None or n >= len(steps):
        return steps
    if n < 1:
        return []
    picks = {round(i * (len(steps) - 1) / max(1, n - 1)) for i in range(n)}
    return [steps[i] for i in sorted(picks)]


def _final_step(folder: str | None) -> int | None:
    """Training steps of the final model, from its ``train_log.jsonl`` (None if absent)."""
    from lens import organism

    try:
        root = Path(folder) if folder else organism.shipped_path()
        first = (root / "train_log.jsonl").read_text().splitlines()[0]
        return int(json.loads(first)["steps"])
    except (FileNotFoundError, IndexError, KeyError, ValueError):
        return None


def _shortcut_layers(model: Any, chosen: list[int] | None) -> list[int]:
    last = int(model.cfg.n_layers) - 1
    layers = list(range(last)) if chosen is None else list(chosen)
    bad = [x for x in layers if not isinstance(x, int) or not 0 <= x < last]
    if bad:
        raise ValueError(
            f"shortcut_layers must be layers 0..{last - 1} (before the last), got {bad}"
        )
    return layers


def _shortcut_study(
    model: Any,
    queries: dict[str, list[Any]],
    world: Any,
    facts: list[int],
    layers: list[int],
    config: Config,
    rng: random.Random,
    full_predictions: dict[str, dict[int, int]],
) -> dict[str, Any]:
    import lens

    n_fit = max(1, round(config.fit_fraction * len(facts)))
    fit = set(rng.sample(facts, n_fit))
    held = set(facts) - fit
    fit_prompts = [q.prompt for qs in queries.values() for q in qs if q.fact_index in fit]
    full = _measure(model, queries, world, config.batch_size, only=held, given=full_predictions)
    entries = []
    for layer in tqdm(layers, desc="linear shortcuts"):
        sc = lens.shortcuts.fit(
            model,
            make_batch(model, fit_prompts),
            src_layer=layer,
            method=config.shortcut_method,
            ridge=config.shortcut_ridge,
            batch_size=config.batch_size,
            progress=False,
        )
        m = _measure(model, queries, world, config.batch_size, shortcut=sc, only=held)
        ours, theirs = m["_predictions"], full["_predictions"]
        same = [ours[s][i] == theirs[s][i] for s in queries for i in ours[s]]
        entry = {"layer": layer, **_strip(m), "agreement": sum(same) / len(same)}
        entry["mean_recall"] = _mean_all(m["recall"])
        base = _mean_all(full["recall"])
        entry["recall_kept"] = entry["mean_recall"] / base if base else None
        entries.append(entry)
    full_out = _strip(full)
    full_out["mean_recall"] = _mean_all(full["recall"])
    return {
        "fit_facts": sorted(fit),
        "eval_facts": sorted(held),
        "n_fit_prompts": len(fit_prompts),
        "method": config.shortcut_method,
        "full": full_out,
        "layers": entries,
    }


def _mean_all(recall: dict[str, float | None]) -> float:
    vals = [v for v in recall.values() if v is not None]
    return float(np.mean(vals)) if vals else 0.0


def _label(config: Config) -> str:
    return f"organism ({config.organism_folder})" if config.organism_folder else "organism"
