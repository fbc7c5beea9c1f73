"""Measuring the fact_consistency study: recall, CLC, checkpoints, linear shortcuts."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from lens.studies._organism_data import model_label, world_folder
from lens.studies.base import jsonable
from lens.studies.datasets import is_organism, study_dataset
from lens.studies.fact_consistency.config import Config
from lens.studies.fact_consistency.data import FactConsistencyData
from lens.studies.fact_consistency.findings import findings
from lens.studies.fact_consistency.measure import Prepared, mean_all, measure, prepare, strip
from lens.studies.fact_consistency.report import Result
from lens.studies.facts import FactQuery, fact_queries, pivot_language
from lens.studies.recovery import effect_recovery, planted_truth
from lens.tokens import batch as make_batch


def run(model: Any, config: Config) -> Result:
    """Measure recall and CLC on the model, its checkpoints and with shortcuts.

    Facts come from ``config.data`` (default: the organism's own facts on the organism, lens's
    built-in real facts on any other model; :func:`lens.studies.datasets.study_dataset`).

    Example:
        >>> import lens
        >>> from lens.studies import fact_consistency as fc
        >>> model = lens.load_model("organism")                     # doctest: +SKIP
        >>> fc.run(model, fc.quick_config()).save("out/fc")         # doctest: +SKIP
    """
    config = config.for_model(model)  # layers within the model, negative ones from the end
    if not 0.0 < config.fit_fraction < 1.0:
        raise ValueError(f"fit_fraction must be in (0, 1), got {config.fit_fraction}")
    dataset, source, world = study_dataset(model, config, config.organism_folder)
    queries = fact_queries(dataset, world)
    known = list(dict.fromkeys(q.language for q in queries))
    pivot = pivot_language(known, world)
    scripts = _scripts(known, pivot, config.scripts)
    rng = random.Random(config.seed)
    facts = sorted({q.index for q in queries})
    if config.max_facts is not None and config.max_facts < len(facts):
        facts = sorted(rng.sample(facts, config.max_facts))
    chosen = set(facts)
    by_lang = {s: [q for q in queries if q.language == s and q.index in chosen] for s in scripts}
    prep = prepare(model, by_lang, pivot)
    data: dict[str, Any] = {
        "pivot": pivot,
        "scripts": scripts,
        "facts": facts,
        "n_layers": int(model.cfg.n_layers),
        "heldout": {s: sorted(q.index for q in by_lang[s] if q.heldout) for s in scripts},
        "source": source,
        "scoring": config.scoring,
        "fact_ids": _fact_ids(queries, facts),
        "skipped": prep.skipped,
    }
    final = measure(model, prep, config.scoring, config.batch_size)
    prep.near_zero = [s for s in scripts if (final["recall"][s] or 0.0) < config.min_recall]
    if prep.near_zero:  # CLC is not computed for them (it would compare near-empty sets)
        final = measure(model, prep, config.scoring, config.batch_size, given=final["_scores"])
    data["near_zero"], data["min_recall"] = prep.near_zero, config.min_recall
    data["final"] = strip(final)
    if config.checkpoints:
        if world is not None or is_organism(model, config.organism_folder):
            folder = _checkpoint_folder(model, config.organism_folder)
            data["training"] = _training(model, prep, config, data["final"], folder)
        else:
            data["training"] = {"points": [], "note": NO_CHECKPOINTS}
    layers = _shortcut_layers(model, config.shortcut_layers)
    if layers:
        data["shortcut"] = _shortcut_study(model, prep, facts, layers, config, rng, final)
        truth = planted_truth(model, "shortcut")
        if truth is not None:
            data["recovery"] = _recovery(truth, data["shortcut"])
    typed = FactConsistencyData.from_dict(jsonable(data))
    label = _label(config) if world is not None else model_label(model)
    return Result(config=config.to_dict(), model=label, data=typed, findings=findings(typed))


NO_CHECKPOINTS = (
    "this model has no training checkpoints lens can load (only the organism ships them), "
    "so consistency over training is not measured"
)


# ---------------------------------------------------------------------- measuring


def _scripts(known: list[str], pivot: str, chosen: list[str] | None) -> list[str]:
    if chosen is None:
        return [pivot] + [s for s in known if s != pivot]
    bad = [s for s in chosen if s not in known]
    if bad:
        raise ValueError(f"unknown languages/notations {bad}; the data has {known}")
    return [pivot] + [s for s in dict.fromkeys(chosen) if s != pivot]


def _fact_ids(queries: list[FactQuery], facts: list[int]) -> list[str]:
    ids = {q.index: q.id for q in queries}
    return [ids[i] for i in facts]


def _checkpoint_folder(model: Any, folder: str | None) -> str | None:
    """Whose checkpoints to measure: ``folder``, else the folder the model was loaded from
    when it is an organism folder (a model trained with ``lens organism train`` and loaded by
    its folder must not be paired with the shipped model's checkpoints), else None (shipped)."""
    if folder is not None:
        return folder
    own = world_folder(model, None)
    return None if own is None else str(own)


def _training(
    model: Any, prep: Prepared, config: Config, final: dict[str, Any], folder: str | None
) -> dict[str, Any]:
    """Recall and CLC of every checkpoint saved in ``folder``, then of the final model."""
    import lens
    from lens import organism

    try:
        steps = organism.checkpoints(folder)
    except FileNotFoundError as exc:
        return {"points": [], "note": f"no checkpoints: {exc}"}
    steps = _spread(steps, config.max_checkpoints)
    points = []
    for step in tqdm(steps, desc="checkpoints", disable=not steps):
        ckpt = lens.load_model(
            "organism",
            checkpoint=step,
            folder=folder,
            device=next(model.parameters()).device,
        )
        m = strip(measure(ckpt, prep, config.scoring, config.batch_size))
        points.append({"step": step, "label": f"step {step}", **m})
        del ckpt
    final_step = _final_step(folder)
    label = f"final (step {final_step})" if final_step is not None else "final"
    x = final_step if final_step is not None else (steps[-1] + 1 if steps else 0)
    points.append({"step": x, "label": label, **final})
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
    prep: Prepared,
    facts: list[int],
    layers: list[int],
    config: Config,
    rng: random.Random,
    final: dict[str, Any],
) -> dict[str, Any]:
    import lens

    n_fit = max(1, round(config.fit_fraction * len(facts)))
    fit = set(rng.sample(facts, n_fit))
    held = set(facts) - fit
    fit_prompts = [q.prompt for qs in prep.queries.values() for q in qs if q.index in fit]
    args = (config.scoring, config.batch_size)
    full = measure(model, prep, *args, only=held, given=final["_scores"])
    base = mean_all(full["recall"])
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
        m = measure(model, prep, *args, shortcut=sc, only=held)
        ours, theirs = m["_scores"], full["_scores"]
        same = [ours[s][i][1] == theirs[s][i][1] for s in ours for i in ours[s]]
        entry = {"layer": layer, **strip(m), "agreement": sum(same) / len(same)}
        entry["mean_recall"] = mean_all(m["recall"])
        entry["recall_kept"] = entry["mean_recall"] / base if base else None
        entries.append(entry)
    full_out = strip(full)
    full_out["mean_recall"] = base
    return {
        "fit_facts": sorted(fit),
        "eval_facts": sorted(held),
        "n_fit_prompts": len(fit_prompts),
        "method": config.shortcut_method,
        "full": full_out,
        "layers": entries,
    }


def _recovery(truth: dict[str, Any], sc: dict[str, Any]) -> dict[str, Any] | None:
    """The best shortcut (the findings' choice: highest CLC, then recall) from a layer before
    the planted late path vs the full model, on the planted organism; None when no shortcut
    layer lies before it."""
    first = min(truth["damaged_layers"])
    before = [e for e in sc["layers"] if e["layer"] < first]
    if not before:
        return None
    best = max(before, key=lambda e: (e["mean_clc"] or 0.0, e["mean_recall"]))
    full = sc["full"]
    return effect_recovery(
        {"recall": full["mean_recall"], "CLC": full["mean_clc"]},
        {"recall": best["mean_recall"], "CLC": best["mean_clc"]},
        "shortcut-friendly late path",
        planted=bool(truth["planted"]),
        how=f"shortcut from layer {best['layer']}",
    )


def _label(config: Config) -> str:
    return f"organism ({config.organism_folder})" if config.organism_folder else "organism"
