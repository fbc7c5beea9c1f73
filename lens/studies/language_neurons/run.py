"""Measuring the language-neuron study: LAPE selection, loss matrices, random baseline."""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interventions.neurons import NeuronDeactivation
from lens.finders.lape import activation_probabilities, lape
from lens.hooks import apply
from lens.stats.corpus import labelled
from lens.studies._organism_data import model_label, split
from lens.studies.base import (
    jsonable,
)
from lens.studies.language_neurons.config import Config
from lens.studies.language_neurons.data import LanguageNeuronsData
from lens.studies.language_neurons.findings import findings
from lens.studies.language_neurons.report import Result
from lens.studies.neuron_sets import random_like
from lens.studies.recovery import neuron_recovery, planted_truth
from lens.tokens import Batch
from lens.tokens import batch as make_batch


def texts_by_language(model: Any, config: Config) -> tuple[str, dict[str, list[str]]]:
    """(data name, {language: texts}) as chosen by ``config.data``: on the organism with no
    data, its own corpora (named ``"organism"``); else the texts dataset (default: the
    built-in ``"texts"``), in the order of the file.

    Example:
        >>> import lens
        >>> from lens.studies import language_neurons
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> name, texts = texts_by_language(model, language_neurons.Config(languages=["fr"]))
        >>> name, list(texts), len(texts["fr"]) > 10
        ('texts', ['fr'], True)
    """
    from lens.studies.datasets import study_dataset

    dataset, name, world = study_dataset(model, config)
    if world is not None:
        name = "organism"
    known = dataset.languages()
    langs = config.languages or known
    unknown = [x for x in langs if x not in known]
    if unknown:
        raise ValueError(f"unknown languages {unknown}; the data ({name}) has {known}")
    return name, {x: [r.text for r in dataset.by_language(x)] for x in langs}


@torch.no_grad()
def group_losses(
    model: Any,
    batch: Batch,
    groups: Int[Tensor, " batch"],
    n_groups: int,
    *,
    interventions: list[Any] | tuple = (),
    batch_size: int = 64,
) -> Float[Tensor, " group"]:
    """Mean next-token cross-entropy per group over all predicted real tokens (float64).

    Rows of ``batch`` (any padding side) belong to ``groups[row]``; a token counts when both
    it and the token before it are real. Runs under ``interventions``.

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> b = lens.tokens.batch(model, [[1, 2, 3], [4, 5]], padding_side="right")
        >>> group_losses(model, b, torch.tensor([0, 1]), 2).shape
        torch.Size([2])
    """
    sums = torch.zeros(n_groups, dtype=torch.float64)
    counts = torch.zeros(n_groups, dtype=torch.float64)
    with apply(model, *interventions):
        for start in range(0, len(batch), batch_size):
            tokens = batch.tokens[start : start + batch_size]
            mask = batch.attention_mask[start : start + batch_size]
            logits = model(tokens, attention_mask=mask)
            nll = F.cross_entropy(
                logits[:, :-1].float().flatten(0, 1), tokens[:, 1:].flatten(), reduction="none"
            ).view(tokens.shape[0], -1)
            valid = (mask[:, 1:].bool() & mask[:, :-1].bool()).double().cpu()
            g = groups[start : start + batch_size]
            sums.index_add_(0, g, (nll.double().cpu() * valid).sum(1))
            counts.index_add_(0, g, valid.sum(1))
    if bool((counts == 0).any()):
        raise ValueError("a group has no predicted tokens (texts of one token only?)")
    return sums / counts


def deactivation_matrix(
    model: Any,
    sets: list[dict[int, list[int]]],
    batch: Batch,
    groups: Int[Tensor, " batch"],
    base: Float[Tensor, " group"],
    batch_size: int,
    desc: str = "deactivation",
) -> np.ndarray:
    """``[i, j]`` loss increase on group j with ``sets[i]`` deactivated (nan for empty sets)."""
    n = base.shape[0]
    out = np.full((len(sets), n), np.nan)
    for i, neurons in enumerate(tqdm(sets, desc=desc, leave=False)):
        if not neurons:
            continue
        loss = group_losses(
            model,
            batch,
            groups,
            n,
            interventions=[NeuronDeactivation(neurons)],
            batch_size=batch_size,
        )
        out[i] = (loss - base).numpy()
    return out


def diagonal_stats(matrix: np.ndarray) -> dict[str, Any]:
    """Diagonal vs off-diagonal summary over rows that are not nan.

    Returns diag_mean, off_mean, rows_own_max (rows whose diagonal is strictly larger than
    every other entry of the row), cols_own_max (the same per column), n_rows.
    """
    rows = [i for i in range(matrix.shape[0]) if not np.isnan(matrix[i]).any()]
    if not rows:
        return {
            "diag_mean": None,
            "off_mean": None,
            "rows_own_max": [],
            "cols_own_max": [],
            "n_rows": 0,
        }
    diag = [matrix[i, i] for i in rows]
    off = [matrix[i, j] for i in rows for j in range(matrix.shape[1]) if j != i]
    rows_max = [i for i in rows if matrix[i, i] > np.max(np.delete(matrix[i], i))]
    cols_max = [
        i
        for i in rows
        if matrix[i, i] > np.max([matrix[r, i] for r in rows if r != i] or [-np.inf])
    ]
    return {
        "diag_mean": float(np.mean(diag)),
        "off_mean": float(np.mean(off)) if off else None,
        "rows_own_max": rows_max,
        "cols_own_max": cols_max,
        "n_rows": len(rows),
    }


def edge_layers(n_layers: int) -> list[int]:
    """The bottom and top layers: the first and last ``max(1, round(n_layers / 6))``."""
    m = max(1, round(n_layers / 6))
    return sorted(set(range(m)) | set(range(n_layers - m, n_layers)))


def run(model: Any, config: Config) -> Result:
    """Run the study; see the module docstring."""
    start = time.perf_counter()
    if not 0.0 < config.eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {config.eval_fraction}")
    corpus_name, texts = texts_by_language(model, config)
    langs = list(texts)
    if len(langs) < 2:
        raise ValueError("language_neurons needs at least two languages")
    stat_texts: dict[str, list[str]] = {}
    eval_texts: dict[str, list[str]] = {}
    for k, lang in enumerate(langs):
        items = list(texts[lang])
        random.Random(config.seed + k).shuffle(items)
        items = items[: config.max_texts] if config.max_texts is not None else items
        eval_texts[lang], stat_texts[lang] = split(items, config.eval_fraction, config.seed + k)

    # 1-2: statistics and LAPE
    corpus = [pair for lang in langs for pair in labelled(stat_texts[lang], lang)]
    stats = activation_probabilities(
        model, corpus, langs, batch_size=config.batch_size, progress=config.progress
    )
    found = lape(
        stats,
        top_rate=config.top_rate,
        filter_rate=config.filter_rate,
        activation_bar_ratio=config.activation_bar_ratio,
    )
    sets = [found.by_layer(lang, exclusive=config.exclusive_only) for lang in langs]
    t_select = time.perf_counter() - start

    # 3-4: loss matrix and random baseline on the held-out texts
    rows = [t for lang in langs for t in eval_texts[lang]]
    groups = torch.tensor([k for k, lang in enumerate(langs) for _ in eval_texts[lang]])
    batch = make_batch(model, rows, padding_side="right")
    base = group_losses(
        model, batch, groups, len(langs), interventions=(), batch_size=config.batch_size
    )
    increase = deactivation_matrix(model, sets, batch, groups, base, config.batch_size)
    width = int(model.cfg.d_mlp)
    random_runs = []
    for s in range(config.n_random_seeds):
        gen = torch.Generator().manual_seed(config.seed * 1000 + s)
        rand_sets = [random_like(n, width, gen) for n in sets]
        random_runs.append(
            deactivation_matrix(
                model, rand_sets, batch, groups, base, config.batch_size, f"random seed {s}"
            )
        )
    random_mean = np.mean(random_runs, axis=0) if random_runs else np.full_like(increase, np.nan)

    pairs = {lang: found.neurons[lang] for lang in langs}
    overlap = [[len(set(pairs[a]) & set(pairs[b])) for b in langs] for a in langs]
    n_layers = len(found.layers)
    data = {
        "corpus": corpus_name,
        "languages": langs,
        "layers": found.layers,
        "n_neurons_total": n_layers * width,
        "n_selected": int(found.selected.sum()),
        "n_stat_texts": {lang: len(stat_texts[lang]) for lang in langs},
        "n_eval_texts": {lang: len(eval_texts[lang]) for lang in langs},
        "eval_texts": eval_texts,
        "n_eval_tokens": {
            lang: int(
                (batch.attention_mask[:, 1:] & batch.attention_mask[:, :-1])[groups == k].sum()
            )
            for k, lang in enumerate(langs)
        },
        "filter_threshold": found.filter_threshold,
        "activation_bar": found.activation_bar,
        "neurons": {lang: [list(p) for p in pairs[lang]] for lang in langs},
        "exclusive": {lang: [list(p) for p in found.exclusive[lang]] for lang in langs},
        "n_neurons": {lang: len(pairs[lang]) for lang in langs},
        "n_exclusive": {lang: len(found.exclusive[lang]) for lang in langs},
        "deactivated": {lang: sum(len(v) for v in s.values()) for lang, s in zip(langs, sets)},
        "per_layer": found.per_layer.tolist(),
        "edge_layers": [found.layers[i] for i in edge_layers(n_layers)],
        "overlap": overlap,
        "base_loss": base.tolist(),
        "increase": increase,
        "random_increase": random_runs,
        "random_mean": random_mean,
        "stats": diagonal_stats(increase),
        "random_stats": diagonal_stats(random_mean),
        "seconds": {"selection": t_select, "total": time.perf_counter() - start},
    }
    truth = planted_truth(model, "language_neurons")
    if truth is not None:
        data["recovery"] = neuron_recovery(pairs, truth["neurons"], "language neurons")
    # strict JSON (nan -> None), so a loaded result equals this one
    typed = LanguageNeuronsData.from_dict(jsonable(data))
    return Result(
        config=config.to_dict(), model=model_label(model), data=typed, findings=findings(typed)
    )
