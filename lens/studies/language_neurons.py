"""Language-specific neurons (LAPE, Tang et al. 2024, arXiv 2402.16438) and their effect.

1. Activation probabilities of every MLP neuron per language (``lens.collect`` over
   ``mlp.hook_pre``: for the gated MLPs of Llama models the gate pre-activation, so "active"
   means SiLU(gate) > 0) on a part of each language's texts.
2. :func:`lens.finders.lape` keeps the lowest-entropy ``top_rate`` of all neurons and assigns
   each to the languages where its activation probability is high; per-layer distribution and
   exclusive neurons (assigned to one language only) follow.
3. Deactivation matrix: ``increase[i, j]`` = mean next-token cross-entropy on held-out texts
   of language j with language i's neurons set to 0 (``NeuronDeactivation``, every position,
   ``mlp.hook_post``) minus the same without intervention. Texts held out from step 1.
4. Random baseline: for every language i and seed, neurons drawn uniformly in each layer with
   the same per-layer counts as language i's set; the matrix is averaged over seeds.

On the organism the "languages" are its five languages and two code notations (texts from
:func:`lens.organism.corpus`); on other models, :mod:`lens.studies.samples` (English, French,
German, Spanish, Python, JavaScript, C).
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

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
from lens.studies._organism_data import model_label, organism_world, split
from lens.studies.base import (
    Finding,
    StudyConfig,
    StudyResult,
    fmt_number,
    jsonable,
    register_study,
)
from lens.tokens import Batch
from lens.tokens import batch as make_batch


@dataclass
class Config(StudyConfig):
    """Settings of the language-neuron study (defaults for the organism).

    Attributes:
        corpus: ``"auto"`` (the organism's per-language corpora when the model is an organism,
            else the built-in samples), ``"organism"`` or ``"samples"``.
        languages: languages/notations to study (None = all of the corpus).
        max_texts: texts per language used at most (sampled with ``seed``; None = all).
        eval_fraction: share of each language's texts held out for the loss matrix (never used
            for the statistics).
        top_rate, filter_rate, activation_bar_ratio: LAPE thresholds. The paper keeps 1 % of
            the neurons of 7B models (thousands); the organism has 2,304 MLP neurons shared by
            7 scripts, so 5 % (115 neurons) is the default here.
        exclusive_only: deactivate only each language's exclusive neurons.
        n_random_seeds: random same-size neuron sets per language for the baseline.
        batch_size: examples per forward.
    """

    corpus: str = "auto"
    languages: list[str] | None = None
    max_texts: int | None = 300
    eval_fraction: float = 0.25
    top_rate: float = 0.05
    filter_rate: float = 0.95
    activation_bar_ratio: float = 0.95
    exclusive_only: bool = False
    n_random_seeds: int = 3
    batch_size: int = 64


def quick_config() -> Config:
    """A few seconds on the organism."""
    return Config(max_texts=60, n_random_seeds=1)


def texts_by_language(model: Any, config: Config) -> tuple[str, dict[str, list[str]]]:
    """(corpus name, {language: texts}) as chosen by ``config.corpus``."""
    from lens import organism
    from lens.studies.samples import samples

    if config.corpus not in ("auto", "organism", "samples"):
        raise ValueError(f"corpus must be 'auto', 'organism' or 'samples', got {config.corpus!r}")
    world = organism_world(model, required=False) if config.corpus != "samples" else None
    if config.corpus == "organism" and world is None:
        raise ValueError("corpus='organism' but this model's tokenizer is not an organism's")
    if world is not None:
        langs = config.languages or world.scripts
        unknown = [x for x in langs if x not in world.scripts]
        if unknown:
            raise ValueError(f"unknown languages {unknown}; the organism has {world.scripts}")
        return "organism", {x: organism.corpus(world, x) for x in langs}
    return "samples", samples(config.languages)


@torch.no_grad()
def group_losses(
    model: Any,
    batch: Batch,
    groups: Int[Tensor, " batch"],
    n_groups: int,
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


def random_like(
    neurons: dict[int, list[int]], width: int, generator: torch.Generator
) -> dict[int, list[int]]:
    """Random neurons with the same count in every layer as ``neurons``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> {k: len(v) for k, v in random_like({0: [1, 2], 3: [7]}, 16, g).items()}
        {0: 2, 3: 1}
    """
    return {
        layer: sorted(torch.randperm(width, generator=generator)[: len(idx)].tolist())
        for layer, idx in neurons.items()
    }


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
        loss = group_losses(model, batch, groups, n, [NeuronDeactivation(neurons)], batch_size)
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
        model, corpus, langs, batch_size=config.batch_size, progress=True
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
    base = group_losses(model, batch, groups, len(langs), (), config.batch_size)
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
    data = jsonable(data)  # strict JSON (nan -> None), so a loaded result equals this one
    return Result(
        config=config.to_dict(), model=model_label(model), data=data, findings=findings(data)
    )


def _fmt(x: float | None) -> str:
    return fmt_number(x, 4)


def findings(data: dict[str, Any]) -> list[Finding]:
    """The paper's claims checked against ``data`` (computed, never assumed)."""
    langs = data["languages"]
    inc = np.array(data["increase"], dtype=float)
    st = data["stats"]
    rnd = np.array(data["random_mean"], dtype=float)
    out = []
    rows = [i for i in range(len(langs)) if not np.isnan(inc[i]).any()]
    missing = [langs[i] for i in range(len(langs)) if i not in rows]
    note = f" Languages without neurons (no row): {missing}." if missing else ""
    if st["n_rows"] and st["off_mean"] is not None:
        out.append(
            Finding(
                claim="Deactivating a language's neurons raises the loss on that language more "
                "than on the others (the diagonal of the deactivation matrix dominates).",
                reproduced=st["diag_mean"] > st["off_mean"],
                evidence=f"Mean loss increase on the own language {_fmt(st['diag_mean'])} nats vs "
                f"{_fmt(st['off_mean'])} on other languages.{note}",
            )
        )
        own = [langs[i] for i in st["rows_own_max"]]
        out.append(
            Finding(
                claim="Each language's neurons hurt their own language most (row maximum on the "
                "diagonal for every language).",
                reproduced=len(own) == st["n_rows"],
                evidence=f"Own language hurt most for {len(own)}/{st['n_rows']} languages "
                f"({', '.join(own) or 'none'}).{note}",
            )
        )
    if rows and not np.isnan(rnd[rows]).all():
        own = np.array([inc[i, i] for i in rows])
        base = np.array([rnd[i, i] for i in rows])
        beats = [langs[i] for i, a, b in zip(rows, own, base) if a > b]
        out.append(
            Finding(
                claim="Language neurons matter more than random neurons: the own-language loss "
                "increase exceeds that of random neurons with the same per-layer counts.",
                reproduced=len(beats) == len(rows),
                evidence=f"Own-language increase {own.mean():.4f} vs random {base.mean():.4f} nats "
                f"(mean over languages, {len(data['random_increase'])} seed(s)); higher "
                f"than random for {len(beats)}/{len(rows)} languages.",
            )
        )
    per_layer = np.array(data["per_layer"])
    total = per_layer.sum()
    if total > 0:
        idx = [data["layers"].index(layer) for layer in data["edge_layers"]]
        share = per_layer[:, idx].sum() / total
        half = len(data["layers"]) / 2
        bottom = per_layer[:, [i for i in idx if i < half]].sum() / total
        uniform = len(idx) / len(data["layers"])
        out.append(
            Finding(
                claim="Language-specific neurons sit mostly in the bottom and top layers.",
                reproduced=bool(share > uniform),
                evidence=f"{share:.0%} of the language-neuron assignments are in layers "
                f"{data['edge_layers']} ({uniform:.0%} if spread evenly): {bottom:.0%} in the "
                f"bottom ones, {share - bottom:.0%} in the top ones.",
            )
        )
    return out


class Result(StudyResult):
    """Numbers of the language-neuron study; see the module docstring."""

    study: ClassVar[str] = "language_neurons"
    title: ClassVar[str] = "Language-specific neurons (LAPE) and their deactivation"

    def headline(self) -> str:
        st, rs = self.data["stats"], self.data["random_stats"]
        return (
            f"own-language loss increase {_fmt(st['diag_mean'])} vs others "
            f"{_fmt(st['off_mean'])} vs random {_fmt(rs['diag_mean'])} nats; own language "
            f"hurt most in {len(st['rows_own_max'])}/{st['n_rows']}"
        )

    def report_body(self) -> str:
        d = self.data
        langs = d["languages"]
        inc = np.array(d["increase"], dtype=float)
        rnd = np.array(d["random_mean"], dtype=float)
        lines = [
            f"LAPE kept {d['n_selected']} of {d['n_neurons_total']} MLP neurons (lowest "
            f"entropy of activation probability across languages, among neurons whose largest "
            f"probability exceeds {d['filter_threshold']:.3f}); a kept neuron belongs to every "
            f"language where its activation probability exceeds {d['activation_bar']:.3f}. "
            f"Texts: {d['corpus']} corpus; statistics and losses use disjoint texts.",
            "",
            "Loss increase = mean next-token cross-entropy (nats) on the held-out texts of a "
            "language with the neurons set to zero, minus the same without intervention. "
            "Random = neurons drawn uniformly with the same count per layer, averaged over "
            "seeds.",
            "",
            "| language | neurons | exclusive | base loss | own increase | mean increase on "
            "others | random own increase |",
            "|---|---|---|---|---|---|---|",
        ]
        for i, lang in enumerate(langs):
            others = [inc[i, j] for j in range(len(langs)) if j != i]
            own = "n/a" if np.isnan(inc[i, i]) else f"{inc[i, i]:.4f}"
            oth = "n/a" if np.isnan(others).any() else f"{np.mean(others):.4f}"
            r = "n/a" if np.isnan(rnd[i, i]) else f"{rnd[i, i]:.4f}"
            lines.append(
                f"| {lang} | {d['n_neurons'][lang]} | {d['n_exclusive'][lang]} | "
                f"{d['base_loss'][i]:.3f} | {own} | {oth} | {r} |"
            )
        lines += [
            "",
            f"Neurons per layer (rows: languages, columns: layers {d['layers']}):",
            "",
            "```",
        ]
        lines += [f"{lang:>10} {row}" for lang, row in zip(langs, d["per_layer"])]
        lines += [
            "```",
            "",
            f"Time: {d['seconds']['total']:.1f} s (selection {d['seconds']['selection']:.1f} s).",
        ]
        return "\n".join(lines)

    def plots(self, out: Path) -> list[Path]:
        from lens.plots import new_figure, save_figure

        d = self.data
        langs = d["languages"]
        paths = []
        per_layer = np.array(d["per_layer"])
        fig = new_figure(max(5.0, 0.5 * len(d["layers"]) + 3), 3.8)
        ax = fig.add_subplot()
        bottom = np.zeros(per_layer.shape[1])
        cmap = _colors(len(langs))
        for k, lang in enumerate(langs):
            ax.bar(range(len(d["layers"])), per_layer[k], bottom=bottom, label=lang, color=cmap[k])
            bottom += per_layer[k]
        ax.set_xticks(range(len(d["layers"])), [str(x) for x in d["layers"]])
        ax.set_xlabel("layer")
        ax.set_ylabel("language-specific neurons")
        ax.set_title("LAPE neurons per layer and language")
        ax.legend(fontsize=8, ncols=2 if len(langs) > 5 else 1)
        paths.append(save_figure(fig, out / "layer_distribution.png"))

        inc = np.array(d["increase"], dtype=float)
        rnd = np.array(d["random_mean"], dtype=float)
        fig = new_figure(2 * (0.55 * len(langs) + 2.2), 0.55 * len(langs) + 2.0)
        both = np.concatenate([inc[~np.isnan(inc)], rnd[~np.isnan(rnd)]])
        vmax = float(np.abs(both).max()) if both.size else 1.0
        for p, (mat, name) in enumerate([(inc, "language neurons"), (rnd, "random neurons")]):
            ax = fig.add_subplot(1, 2, p + 1)
            im = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            _annotate(ax, mat)
            ax.set_xticks(range(len(langs)), langs, rotation=45)
            ax.set_yticks(range(len(langs)), langs)
            ax.set_xlabel("loss measured on language j")
            ax.set_ylabel("neurons of language i deactivated")
            ax.set_title(f"loss increase (nats): {name}", fontsize=10)
        fig.colorbar(im, ax=fig.axes, shrink=0.8, label="nats")
        paths.append(save_figure(fig, out / "deactivation_matrix.png"))
        return paths


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i) for i in range(n)]


def _annotate(ax: Any, mat: np.ndarray, fmt: str = "{:.2f}") -> None:
    if mat.shape[0] * mat.shape[1] > 144:
        return
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if not np.isnan(mat[i, j]):
                ax.text(j, i, fmt.format(mat[i, j]), ha="center", va="center", fontsize=7)


register_study("language_neurons", sys.modules[__name__])
