"""Result of the concept_space study: headline, markdown report, plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from lens.studies.base import StudyResult


@dataclass
class Result(StudyResult):
    """``data["panels"]``: one entry per translation pair / fact language with per-layer mean
    curves (``mass[name]``, a list over layers) and top-1 shares; ``data["summary"]``: the
    per-group aggregate curves and the "pivot first" check of every panel."""

    study: ClassVar[str] = "concept_space"
    title: ClassVar[str] = "Concept space: pivot vs target language per layer (logit lens)"

    def headline(self) -> str:
        groups = self.data["summary"]["groups"]
        counts = ", ".join(
            f"{g} {s['check']['panels_holding']}/{s['check']['n_panels']}"
            for g, s in groups.items()
        )
        top = max(groups.values(), key=lambda s: s["check"]["pivot_peak"])["check"]
        return (
            f"pivot answer ahead of target in middle layers: {counts} panels; largest mean "
            f"pivot-answer probability {top['pivot_peak']:.2f} (layer {top['peak_layer']}, "
            f"target {top['target_at_peak']:.2f} there)"
        )

    def report_body(self) -> str:
        return _report_body(self.data, self.config)

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.concept_space.plots import plot_groups, plot_panels

        paths = []
        kinds = {p["kind"] for p in self.data["panels"]}
        for kind in ("translation", "facts"):
            if kind in kinds:
                paths.append(plot_panels(self.data, kind, out / f"{kind}_panels.png"))
        paths.append(plot_groups(self.data, out / "summary.png"))
        return paths


def _report_body(data: dict[str, Any], config: dict[str, Any]) -> str:
    lines = [
        "Each number is a probability read with the logit lens at the last prompt position "
        "(the position that predicts the answer), averaged over the items of a panel. "
        "`target` is the probability of the correct answer word in the target language, "
        "`pivot` that of the same concept's word in the pivot language "
        f"(`{data['pivot']}`), `source` that of the word being translated; the category "
        "masses sum the probability of every token of the target language, of the pivot "
        "language, and of the code notations (token languages from the organism's ground "
        "truth). The last layer is the model's own output.",
        "",
        f'"Pivot first" counts for a panel when a layer before the last has pivot > target '
        f"with pivot >= {data['summary']['min_mass']}, and the last layer has target > pivot.",
    ]
    for group, s in data["summary"]["groups"].items():
        lines += [
            "",
            f"### {group} (mean of {s['check']['n_panels']} panels)",
            "",
            "| layer | " + " | ".join(s["mass"]) + " |",
            "|---|" + "---|" * len(s["mass"]),
        ]
        for layer in data["layers"]:
            row = " | ".join(f"{s['mass'][k][layer]:.3f}" for k in s["mass"])
            lines.append(f"| {layer} | {row} |")
    lines += [
        "",
        "### Per panel",
        "",
        "| panel | n | pivot first | peak pivot (layer) | target there | last layer "
        "target / pivot | target stays ahead from layer |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in data["panels"]:
        c = p["check"]
        lines.append(
            f"| {p['name']} | {p['n']} | {'yes' if c['holds'] else 'no'} | "
            f"{c['pivot_peak']:.3f} ({c['peak_layer']}) | {c['target_at_peak']:.3f} | "
            f"{c['target_final']:.3f} / {c['pivot_final']:.3f} | "
            f"{c['switch_layer'] if c['switch_layer'] is not None else '-'} |"
        )
    return "\n".join(lines)
