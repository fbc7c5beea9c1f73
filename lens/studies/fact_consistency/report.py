"""Result of the fact_consistency study: headline, markdown report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from lens.studies.base import StudyResult
from lens.studies.base import fmt_number as _num


@dataclass
class Result(StudyResult):
    """``data["final"]``, each entry of ``data["training"]["points"]`` and of
    ``data["shortcut"]["layers"]`` hold ``recall`` / ``clc`` per script and ``correct``: the
    sorted fact indexes answered correctly per script (``C_L``), from which CLC is computed."""

    study: ClassVar[str] = "fact_consistency"
    title: ClassVar[str] = "Factual recall and cross-lingual consistency"

    def headline(self) -> str:
        f = self.data["final"]
        parts = [
            f"recall pivot {_num(f['recall'][self.data['pivot']])} vs others "
            f"{_num(f['mean_recall_others'])}, mean CLC {_num(f['mean_clc'])}"
        ]
        tr = self.data.get("training")
        if tr and len(tr["points"]) >= 2:
            parts.append(
                f"CLC over training {_num(tr['points'][0]['mean_clc'])} -> "
                f"{_num(tr['points'][-1]['mean_clc'])}"
            )
        sc = self.data.get("shortcut")
        if sc and sc["layers"]:
            best = max(sc["layers"], key=lambda e: e["mean_recall"])
            parts.append(
                f"best shortcut L{best['layer']} keeps "
                f"{100 * (best['recall_kept'] or 0.0):.0f}% of recall"
            )
        return "; ".join(parts)

    def report_body(self) -> str:
        return report_body(self.data)

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.fact_consistency.plots import plot_all

        return plot_all(self.data, out)


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
