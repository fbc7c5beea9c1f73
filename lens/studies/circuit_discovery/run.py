"""Running the circuit discovery study: usable pairs, edge scores per method, faithfulness
curves, the heads that matter."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import torch
from tqdm.auto import tqdm

from lens.circuits import Graph, attribute, faithfulness_curve
from lens.studies._organism_data import model_label
from lens.studies.circuit_discovery.config import Config, MethodName
from lens.studies.circuit_discovery.data import CircuitData
from lens.studies.circuit_discovery.findings import findings
from lens.studies.circuit_discovery.report import Result
from lens.studies.datasets import study_dataset
from lens.token_rule import TokenError, token_id
from lens.tokens import batch

Pair = tuple[str, str, int, int]  # clean, corrupt, answer id, wrong id


def select_records(records: list[Any], task: str | None, language: str | None) -> list[Any]:
    """The records of ``task`` (None: the first task) in ``language`` (None: its first)."""
    if not records:
        return []
    task = task or records[0].task
    chosen = [r for r in records if r.task == task]
    if not chosen:
        tasks = sorted({r.task for r in records})
        raise ValueError(f"no pairs of task {task!r} in the data; its tasks are {tasks}")
    language = language or chosen[0].language
    out = [r for r in chosen if r.language == language]
    if not out:
        langs = sorted({r.language for r in chosen})
        raise ValueError(f"no {task} pairs in language {language!r}; it has {langs}")
    return out


def usable_pairs(
    model: Any,
    records: list[Any],
    n: int,
    *,
    only_correct: bool,
    first_token: bool = False,
    batch_size: int = 16,
) -> tuple[list[Pair], Counter]:
    """The first ``n`` records the model can be scored on, and why the others were skipped
    (``first_token``: answers of several tokens are scored by their first one)."""
    skipped: Counter = Counter()
    candidates: list[Pair] = []
    multi: Any = "first" if first_token else "error"
    for r in records:
        try:
            a = token_id(model, r.answer, what="answer", multi=multi)
            w = token_id(model, r.wrong, what="wrong", multi=multi)
        except TokenError:
            skipped["answer or wrong is not one token"] += 1
            continue
        lengths = batch(model, [r.clean, r.corrupt]).attention_mask.sum(1).tolist()
        if lengths[0] != lengths[1]:
            skipped["clean and corrupt differ in token length"] += 1
        elif a == w:
            skipped["answer and wrong have the same (first) token"] += 1
        else:
            candidates.append((r.clean, r.corrupt, a, w))
    if not only_correct:
        return candidates[:n], skipped
    out: list[Pair] = []
    for start in range(0, len(candidates), batch_size):
        chunk = candidates[start : start + batch_size]
        b = batch(model, [c[0] for c in chunk])
        with torch.no_grad():
            logits = model(b.tokens, attention_mask=b.attention_mask)[:, -1]
        for c, row in zip(chunk, logits):
            if float(row[c[2]]) > float(row[c[3]]):
                out.append(c)
            else:
                skipped["the clean run prefers wrong to answer"] += 1
        if len(out) >= n:
            break
    return out[:n], skipped


def top_heads(graph: Graph, k: int = 10) -> list[dict[str, Any]]:
    """The ``k`` heads with the most outgoing ``|score|``, with their score into the logits."""
    lay = graph.layout
    out_mass = graph.scores.abs().sum(1)
    heads = [i for i, w in enumerate(lay.writers) if ".h" in w]
    order = sorted(heads, key=lambda i: -float(out_mass[i]))[:k]
    return [
        {
            "head": lay.writers[i],
            "layer": int(lay.writers[i][1:].split(".")[0]),
            "out_score": float(out_mass[i]),
            "to_logits": float(graph.scores[i, -1]),
        }
        for i in order
    ]


def roles(graph: Graph, k: int = 5) -> dict[str, list[dict[str, Any]]]:
    """Heads by role in the graph: ``logit_heads`` (largest ``|score|`` straight into the
    logits: name-mover-like in IOI) and ``query_writers`` (heads writing most into those
    heads' queries: S-inhibition-like), each ``{head, layer, score}``."""
    lay = graph.layout
    heads = [i for i, w in enumerate(lay.writers) if ".h" in w]
    to_logits = sorted(heads, key=lambda i: -abs(float(graph.scores[i, -1])))[:k]

    def item(i: int, score: float) -> dict[str, Any]:
        name = lay.writers[i]
        return {"head": name, "layer": int(name[1:].split(".")[0]), "score": score}

    queries = [lay.reader_index(f"{lay.writers[i]}<q>") for i in to_logits]
    into = graph.scores[:, queries].abs().sum(1)
    writers = sorted(heads, key=lambda i: -float(into[i]))[:k]
    return {
        "logit_heads": [item(i, float(graph.scores[i, -1])) for i in to_logits],
        "query_writers": [item(i, float(into[i])) for i in writers if float(into[i]) > 0],
    }


def score_method(
    model: Any, pairs: list[Pair], method: MethodName, config: Config
) -> tuple[Graph, dict[str, Any]]:
    """Edge scores of one method and its faithfulness curve, as a results entry."""
    clean, corrupt = [p[0] for p in pairs], [p[1] for p in pairs]
    kw: dict[str, Any] = dict(answer=[p[2] for p in pairs], wrong=[p[3] for p in pairs])
    start = time.perf_counter()
    graph = attribute(
        model, clean, corrupt, method=method, steps=config.steps, ig=config.ig,
        batch_size=config.batch_size, **kw,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    total = graph.n_edges
    grid = torch.logspace(0, torch.log10(torch.tensor(float(total))), config.n_sizes)
    sizes = sorted({int(round(float(v))) for v in grid})
    start = time.perf_counter()
    curve = faithfulness_curve(
        model, graph, clean, corrupt, sizes=sizes, ablation=config.ablation,
        batch_size=config.batch_size, **kw,
    )  # fmt: skip
    curve_seconds = time.perf_counter() - start
    circuit = graph.top(config.plot_edges)
    entry = {
        "seconds": seconds,
        "curve_seconds": curve_seconds,
        "steps": graph.steps,
        "curve": {
            "sizes": curve.sizes, "n_edges": curve.n_edges,
            "faithfulness": curve.faithfulness, "cpr": curve.cpr, "cmd": curve.cmd,
            "clean_metric": curve.clean_metric, "empty_metric": curve.empty_metric,
        },
        "top_edges": [list(e) for e in graph.ranked()[:30]],
        "circuit_edges": [[w, r, graph.score(w, r)] for w, r in circuit.edges],
        "top_heads": top_heads(graph),
        "roles": roles(graph),
    }  # fmt: skip
    return graph, entry


def run(model: Any, config: Config) -> Result:
    """Score every edge with each method, then the faithfulness of the top circuits.

    Example:
        >>> import lens
        >>> from lens.studies import circuit_discovery as cd
        >>> res = cd.run(lens.load_model("organism"), cd.quick_config())  # doctest: +SKIP
    """
    from interventions.edge_graph import layout

    dataset, source, _ = study_dataset(model, config)
    records = select_records(list(dataset.records), config.task, config.language)
    pairs, skipped = usable_pairs(
        model, records, config.n_pairs, only_correct=config.only_correct,
        first_token=config.answer_tokens == "first",
    )  # fmt: skip
    if not pairs:
        raise ValueError(
            f"none of the {len(records)} {records[0].task} pairs of {source} is usable on this "
            f"model ({dict(skipped)}); give pairs with one-token answers and equal lengths"
        )
    lay = layout(model)
    methods, graphs = {}, {}
    for method in tqdm(config.methods, desc="circuit discovery", disable=not config.progress):
        graphs[method], methods[method] = score_method(model, pairs, method, config)
    data = CircuitData(
        source=source, task=records[0].task, language=records[0].language,
        n_records=len(records), n_pairs=len(pairs), skipped=dict(skipped),
        pairs=[[p[0], p[1]] for p in pairs[:8]], n_layers=lay.n_layers, n_heads=lay.n_heads,
        n_kv=lay.n_kv, n_edges=int(lay.mask().sum()), methods=methods,
        default_method=config.default_method, ablation=config.ablation,
    )  # fmt: skip
    return Result(
        config=config.to_dict(), model=model_label(model), data=data, findings=findings(data),
        graphs=graphs,
    )  # fmt: skip
