"""Result of the fact_consistency study: headline, markdown report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lens.plots.common import markdown_table
from lens.studies.answers import SkippedAnswer, describe_scoring, skipped_summary
from lens.studies.base import StudyResult
from lens.studies.base import fmt_number as _num
from lens.studies.fact_consistency.data import FactConsistencyData
from lens.studies.fact_consistency.findings import near_zero_note


@dataclass
class Result(StudyResult):
    """Numbers of the fact_consistency study (:class:`FactConsistencyData`): ``final``, each
    training point and each shortcut layer hold ``recall`` / ``clc`` per script and
    ``correct``: the sorted fact indexes answered correctly per script (``C_L``)."""

    study: ClassVar[str] = "fact_consistency"
    title: ClassVar[str] = "Factual recall and cross-lingual consistency"
    Data: ClassVar[type[FactConsistencyData]] = FactConsistencyData
    data: FactConsistencyData

    def headline(self) -> str:
        """The recovery of planted truth (if any), then the study's own headline."""
        rec = self.recovery()
        return f"{rec}; {self._headline()}" if rec else self._headline()

    def _headline(self) -> str:
        """Recall, consistency, their growth over training and the shortcut, in words."""
        d = self.data
        f = d.final
        parts = [
            f"facts recalled: {_num(f['recall'][d.pivot])} in {d.pivot} vs "
            f"{_num(f['mean_recall_others'])} on average in the other languages; overlap of "
            f"the facts known with those known in {d.pivot} (CLC) {_num(f['mean_clc'])}"
        ]
        if d.near_zero:
            parts.append(f"near-zero recall in {', '.join(d.near_zero)} (no CLC there)")
        points = d.training["points"] if d.training else []
        if len(points) >= 2:
            parts[0] += f", up from {_num(points[0]['mean_clc'])} at {points[0]['label']}"
        sc = d.shortcut
        if sc and sc["layers"]:
            best = max(sc["layers"], key=lambda e: e["mean_recall"])
            full_clc = sc["full"]["mean_clc"]
            raises = (
                best["mean_clc"] is not None
                and full_clc is not None
                and best["mean_clc"] > full_clc
            )
            kept = "n/a" if best["recall_kept"] is None else f"{100 * best['recall_kept']:.0f}%"
            clc_part = (
                "CLC is not measurable"
                if full_clc is None
                else f"{'raises' if raises else 'does not raise'} CLC "
                f"({_num(best['mean_clc'])} vs {_num(full_clc)} for the full model)"
            )
            parts.append(
                f"the best linear shortcut (from layer {best['layer']}) keeps {kept} of "
                f"recall ({_num(best['mean_recall'])} vs {_num(sc['full']['mean_recall'])}); "
                + clc_part
            )
        return "; ".join(parts)

    def report_body(self) -> str:
        return report_body(self.data)

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.fact_consistency.plots import plot_all

        return plot_all(self.data, out)


def report_body(data: FactConsistencyData) -> str:
    """Markdown tables: recall and CLC per script, over training, per shortcut layer."""
    pivot, final, scripts = data.pivot, data.final, data.scripts
    others = [s for s in scripts if s != pivot]
    has_heldout = any(data.heldout.get(s) for s in scripts)
    split_cols = ["trained facts", "held-out facts"] if has_heldout else []
    final_rows = [
        [s, _num(final["recall"][s])]
        + (
            [_num(final["recall_split"][s]["trained"]), _num(final["recall_split"][s]["heldout"])]
            if has_heldout
            else []
        )
        + ["-" if s == pivot else _num(final["clc"].get(s))]
        for s in scripts
    ]
    lines = [
        f"Data: `{data.source}`. " + describe_scoring(data.scoring) + " (The default is "
        "`first_token`, the seed papers' scoring; organism answers are one token, where both "
        "scorings agree.) "
        f"`C_L` is the set of facts recalled in `L`; CLC = |C_L ∩ C_{pivot}| / "
        f"|C_L ∪ C_{pivot}| over the facts whose answer is usable in both languages (1 = the "
        "same facts known in both languages, 0 = disjoint)."
        + (
            " Held-out facts never appear in training in that language: recalling them needs "
            "cross-lingual transfer."
            if has_heldout
            else ""
        ),
        "",
        f"### Final model ({len(data.facts)} facts)",
        "",
        markdown_table(["script", "recall", *split_cols, "CLC with pivot"], final_rows),
    ]
    flagged = near_zero_note(data).strip()
    if flagged:
        lines += ["", f"**{flagged}**"]
    for s in scripts:
        skipped = (data.skipped or {}).get(s) or []
        if skipped:
            why = skipped_summary(
                [SkippedAnswer(0, "", k["answer"], k["reason"]) for k in skipped],
                len(data.facts),
            )
            lines += [
                "",
                f"{s}: {why} Examples: "
                + ", ".join(f"{k['id']} ({k['answer']!r})" for k in skipped[:3]),
            ]
    points = data.training["points"] if data.training else []
    if points:
        header = ["point", *(f"recall {s}" for s in scripts), *(f"CLC {s}" for s in others)]
        rows = [
            [p["label"], *(_num(p["recall"][s]) for s in scripts)]
            + [_num(p["clc"][s]) for s in others]
            + [_num(p["mean_clc"])]
            for p in points
        ]
        lines += ["", "### Over training", "", markdown_table([*header, "mean CLC"], rows)]
    elif data.training and data.training.get("note"):
        lines += ["", f"Training checkpoints: {data.training.get('note')}"]
    sc = data.shortcut
    if sc and sc["layers"]:
        full = sc["full"]
        rows = [
            ["full model", _num(full["mean_recall"]), "100%", _num(full["mean_clc"]), "1.00"]
            + [_num(full["recall"][s]) for s in scripts]
        ]
        for e in sc["layers"]:
            kept = "n/a" if e["recall_kept"] is None else f"{100 * e['recall_kept']:.0f}%"
            rows.append(
                [str(e["layer"]), _num(e["mean_recall"]), kept, _num(e["mean_clc"])]
                + [_num(e["agreement"])]
                + [_num(e["recall"][s]) for s in scripts]
            )
        header = ["from layer", "mean recall", "kept", "mean CLC", "agreement"]
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
            markdown_table(header + [f"recall {s}" for s in scripts], rows),
        ]
    return "\n".join(lines)
