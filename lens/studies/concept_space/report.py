"""Result of the concept_space study: headline, markdown report, plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lens.plots.common import markdown_table
from lens.studies.base import StudyResult
from lens.studies.concept_space.data import ConceptSpaceData

_GROUP_NOUN = {
    "translate to language": "translation",
    "translate to code": "translation-to-code",
    "repetition": "repetition",
    "facts": "fact",
}


@dataclass
class Result(StudyResult):
    """Numbers of the concept_space study (:class:`ConceptSpaceData`): per-layer curves of
    every panel, and per group the mean curves and the "pivot first" check."""

    study: ClassVar[str] = "concept_space"
    title: ClassVar[str] = "Concept space: pivot vs target language per layer (logit lens)"
    Data: ClassVar[type[ConceptSpaceData]] = ConceptSpaceData
    data: ConceptSpaceData

    def headline(self) -> str:
        """The recovery of planted truth (if any), then the study's own headline."""
        rec = self.recovery()
        return f"{rec}; {self._headline()}" if rec else self._headline()

    def _headline(self) -> str:
        """Whether the pivot-language answer shows up before the target answer, in words."""
        d = self.data
        groups = d.summary["groups"]
        counts = ", ".join(
            f"{s['check']['panels_holding']} of {s['check']['n_panels']} "
            f"{_GROUP_NOUN.get(g, g)} panels"
            for g, s in groups.items()
        )
        held = sum(s["check"]["panels_holding"] for s in groups.values())
        top = max(groups.values(), key=lambda s: s["check"]["pivot_peak"])["check"]
        lead = (
            f"no detour through {d.pivot}: the {d.pivot} answer never leads the target answer "
            "in a middle layer"
            if held == 0
            else f"the {d.pivot} answer leads the target answer in a middle layer before the "
            "target takes over"
        )
        return (
            f"{lead} ({counts}); the {d.pivot} answer's largest mean probability is "
            f"{top['pivot_peak']:.2f} (layer {top['peak_layer']}), where the target answer has "
            f"{top['target_at_peak']:.2f}"
        )

    def report_body(self) -> str:
        d = self.data
        if d.source == "organism":
            intro = [
                "Each number is a probability read with the logit lens at the last prompt "
                "position (the position that predicts the answer), averaged over the items of a "
                "panel. `target` is the probability of the correct answer word in the target "
                "language, `pivot` that of the same concept's word in the pivot language "
                f"(`{d.pivot}`), `source` that of the word being translated; the category "
                "masses sum the probability of every token of the target language, of the pivot "
                "language, and of the code notations (token languages from the organism's ground "
                "truth). The last layer is the model's own output.",
            ]
        else:
            intro = _dataset_intro(d)
        lines = [
            *intro,
            "",
            f'"Pivot first" counts for a panel when a layer before the last has pivot > target '
            f"with pivot >= {d.summary['min_mass']}, and the last layer has target > pivot.",
        ]
        for group, s in d.summary["groups"].items():
            lines += [
                "",
                f"### {group} (mean of {s['check']['n_panels']} panels)",
                "",
                markdown_table(
                    ["layer", *s["mass"]],
                    [
                        [layer] + [f"{s['mass'][k][layer]:.3f}" for k in s["mass"]]
                        for layer in d.layers
                    ],
                ),
            ]
        rows = []
        for p in d.panels:
            c = p["check"]
            rows.append(
                [
                    p["name"],
                    p["n"],
                    "yes" if c["holds"] else "no",
                    f"{c['pivot_peak']:.3f} ({c['peak_layer']})",
                    f"{c['target_at_peak']:.3f}",
                    f"{c['target_final']:.3f} / {c['pivot_final']:.3f}",
                    c["switch_layer"] if c["switch_layer"] is not None else "-",
                    f"{p['top1']['target answer'][-1]:.2f}",
                ]
            )
        header = [
            "panel",
            "n",
            "pivot first",
            "peak pivot (layer)",
            "target there",
            "last layer target / pivot",
            "target stays ahead from layer",
            "output top-1 = target",
        ]
        lines += ["", "### Per panel", "", markdown_table(header, rows)]
        return "\n".join(lines)

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.concept_space.plots import plot_groups, plot_panels

        paths = []
        kinds = {p["kind"] for p in self.data.panels}
        for kind in ("translation", "facts"):
            if kind in kinds:
                paths.append(plot_panels(self.data, kind, out / f"{kind}_panels.png"))
        paths.append(plot_groups(self.data, out / "summary.png"))
        return paths


def _dataset_intro(d: ConceptSpaceData) -> list[str]:
    excluded = d.excluded or {}
    total = sum(excluded.values())
    per = ", ".join(f"{k} {v}" for k, v in excluded.items() if v)
    n_items = sum(p["n"] for p in d.panels)
    return [
        f"Panels built from the translations data `{d.source}` with the few-shot prompts of "
        'Wendler et al. 2024: translation `Français: "fleur" - Deutsch: "` after solved '
        'examples of the same pair, repetition `Deutsch: "Blume" - Deutsch: "`. Each number '
        "is a probability read with the logit lens at the last prompt position (final norm "
        "recomputed per layer), averaged over the items of a panel. Words are scored by "
        "their first token: `target` is the target-language word, `pivot` the English word "
        f"of the same concept (`{d.pivot}`), `source` the word being translated (copying), "
        "`code` the concept's word in a code language where the data has one. The last "
        "layer is the model's own output.",
        "",
        f"{n_items} prompts decoded. Concepts whose target and {d.pivot} words share a first "
        f"token are excluded (the two curves would be one): {total} in all"
        + (f" ({per})." if per else "."),
        "",
        "`output top-1 = target` is the share of prompts whose output (last layer) top-1 "
        "token is the target word's first token: whether the model performs the task at all.",
    ]
