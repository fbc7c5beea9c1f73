"""Prose tables and PNG figures of the fact_consistency study (from its JSON-safe data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lens.plots import new_figure, save_figure
from lens.studies.base import fmt_number as _num


def report_body(data: dict[str, Any]) -> str:
    """Markdown tables: recall and CLC per script, over training, per shortcut layer."""
    pivot, final = data["pivot"], data["final"]
    others = [s for s in data["scripts"] if s != pivot]
    lines = [
        "A fact counts as recalled in a language when the model's greedy answer to the query "
        "in that language starts with the gold object word; organism answers are one token, "
        "so this is the argmax at the query's last position. `C_L` is the set of facts "
        f"recalled in `L`; CLC = |C_L ∩ C_{pivot}| / |C_L ∪ C_{pivot}| (1 = the same facts "
        "known in both languages, 0 = disjoint). Held-out facts never appear in training in "
        "that language: recalling them needs cross-lingual transfer.",
        "",
        f"### Final model ({len(data['facts'])} facts)",
        "",
        "| script | recall | trained facts | held-out facts | CLC with pivot |",
        "|---|---|---|---|---|",
    ]
    for s in data["scripts"]:
        sp = final["recall_split"][s]
        c = final["clc"].get(s)
        lines.append(
            f"| {s} | {_num(final['recall'][s])} | {_num(sp['trained'])} | "
            f"{_num(sp['heldout'])} | {'-' if s == pivot else _num(c)} |"
        )
    points = data.get("training", {}).get("points", [])
    if points:
        lines += [
            "",
            "### Over training",
            "",
            "| point | "
            + " | ".join(f"recall {s}" for s in data["scripts"])
            + " | "
            + " | ".join(f"CLC {s}" for s in others)
            + " | mean CLC |",
            "|---|" + "---|" * (len(data["scripts"]) + len(others) + 1),
        ]
        for p in points:
            rec = " | ".join(_num(p["recall"][s]) for s in data["scripts"])
            cl = " | ".join(_num(p["clc"][s]) for s in others)
            lines.append(f"| {p['label']} | {rec} | {cl} | {_num(p['mean_clc'])} |")
    elif data.get("training", {}).get("note"):
        lines += ["", f"Training checkpoints: {data['training']['note']}"]
    sc = data.get("shortcut")
    if sc and sc["layers"]:
        lines += [
            "",
            "### Linear shortcut to the last layer",
            "",
            f"Fitted ({sc['method']}) on the queries of {len(sc['fit_facts'])} facts in "
            f"every script ({sc['n_fit_prompts']} prompts, last position); evaluated on "
            f"the other {len(sc['eval_facts'])} facts. `kept` = shortcut recall / "
            "full-model recall (means over scripts); `agreement` = share of queries "
            "where the shortcut's top-1 token equals the full model's.",
            "",
            "| from layer | mean recall | kept | mean CLC | agreement | "
            + " | ".join(f"recall {s}" for s in data["scripts"])
            + " |",
            "|---|---|---|---|---|" + "---|" * len(data["scripts"]),
        ]
        full = sc["full"]
        rec = " | ".join(_num(full["recall"][s]) for s in data["scripts"])
        lines.append(
            f"| full model | {_num(full['mean_recall'])} | 100% | "
            f"{_num(full['mean_clc'])} | 1.00 | {rec} |"
        )
        for e in sc["layers"]:
            rec = " | ".join(_num(e["recall"][s]) for s in data["scripts"])
            kept = "n/a" if e["recall_kept"] is None else f"{100 * e['recall_kept']:.0f}%"
            lines.append(
                f"| {e['layer']} | {_num(e['mean_recall'])} | {kept} | "
                f"{_num(e['mean_clc'])} | {_num(e['agreement'])} | {rec} |"
            )
    return "\n".join(lines)


def _nan(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def plot_all(data: dict[str, Any], out: Path) -> list[Path]:
    """recall_clc.png, and training.png / shortcut.png when those parts ran."""
    paths = [plot_final(data, out / "recall_clc.png")]
    if data.get("training", {}).get("points"):
        paths.append(plot_training(data, out / "training.png"))
    if data.get("shortcut", {}).get("layers"):
        paths.append(plot_shortcut(data, out / "shortcut.png"))
    return paths


def plot_final(data: dict[str, Any], path: Path) -> Path:
    """Bars: recall per script (trained / held-out facts) and CLC with the pivot."""
    final, scripts = data["final"], data["scripts"]
    x = np.arange(len(scripts))
    fig = new_figure(7.5, 3.6)
    ax = fig.add_subplot()
    split = final["recall_split"]
    ax.bar(x - 0.27, _nan([final["recall"][s] for s in scripts]), 0.18, label="recall (all)")
    ax.bar(
        x - 0.09, _nan([split[s]["trained"] for s in scripts]), 0.18, label="recall (trained facts)"
    )
    ax.bar(
        x + 0.09,
        _nan([split[s]["heldout"] for s in scripts]),
        0.18,
        label="recall (held-out facts)",
    )
    ax.bar(
        x + 0.27,
        _nan([final["clc"].get(s) for s in scripts]),
        0.18,
        label=f"CLC with {data['pivot']}",
        color="black",
    )
    ax.set_xticks(x, scripts)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share")
    ax.set_title(
        "Factual recall per language / notation and consistency with the pivot", fontsize=10
    )
    ax.legend(fontsize=7, ncols=2)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def plot_training(data: dict[str, Any], path: Path) -> Path:
    """Recall per script and CLC with the pivot vs training step."""
    points, scripts, pivot = data["training"]["points"], data["scripts"], data["pivot"]
    steps = [p["step"] for p in points]
    fig = new_figure(10.0, 3.6)
    left, right = fig.subplots(1, 2)
    for s in scripts:
        left.plot(
            steps,
            _nan([p["recall"][s] for p in points]),
            marker="o",
            markersize=3,
            label=s,
            linewidth=2.5 if s == pivot else 1.2,
        )
    for s in scripts:
        if s != pivot:
            right.plot(
                steps, _nan([p["clc"][s] for p in points]), marker="o", markersize=3, label=s
            )
    right.plot(
        steps, _nan([p["mean_clc"] for p in points]), color="black", linestyle="--", label="mean"
    )
    for ax, name in ((left, "recall"), (right, f"CLC with {pivot}")):
        ax.set_xlabel("training step (last point: final model)")
        ax.set_ylabel(name)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    left.set_title("Factual recall over training", fontsize=10)
    right.set_title("Cross-lingual consistency over training", fontsize=10)
    return save_figure(fig, path)


def plot_shortcut(data: dict[str, Any], path: Path) -> Path:
    """Mean recall, mean CLC and top-1 agreement with a shortcut from each layer."""
    sc = data["shortcut"]
    layers = [e["layer"] for e in sc["layers"]]
    fig = new_figure(6.5, 3.8)
    ax = fig.add_subplot()
    recall = ax.plot(
        layers, [e["mean_recall"] for e in sc["layers"]], marker="o", label="recall, shortcut"
    )[0]
    clc = ax.plot(
        layers, _nan([e["mean_clc"] for e in sc["layers"]]), marker="s", label="CLC, shortcut"
    )[0]
    ax.plot(
        layers,
        [e["agreement"] for e in sc["layers"]],
        marker="^",
        color="gray",
        label="top-1 agreement with full model",
    )
    ax.axhline(
        sc["full"]["mean_recall"],
        color=recall.get_color(),
        linestyle="--",
        label="recall, full model",
    )
    if sc["full"]["mean_clc"] is not None:
        ax.axhline(
            sc["full"]["mean_clc"], color=clc.get_color(), linestyle="--", label="CLC, full model"
        )
    ax.set_xticks(layers)
    ax.set_xlabel("shortcut source layer (layers after it replaced by an affine map)")
    ax.set_ylabel("mean over scripts")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Linear shortcut to the last layer: recall and CLC", fontsize=10)
    return save_figure(fig, path)
