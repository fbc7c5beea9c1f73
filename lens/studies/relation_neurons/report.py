"""Result of the relation-neuron study: headline, markdown report, plots."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from lens.studies.base import (
    StudyResult,
)
from lens.studies.relation_neurons.findings import _arr, summary


class Result(StudyResult):
    """Numbers of the relation-neuron study; see the module docstring."""

    study: ClassVar[str] = "relation_neurons"
    title: ClassVar[str] = "Relation-specific neurons (average precision) and their deactivation"

    def headline(self) -> str:
        p = summary(self.data)[self.data["language"]]
        r = "n/a" if p["random_diag"] is None else f"{p['random_diag']:.3f}"
        return (
            f"k={self.data['k']}: own-relation accuracy drop {p['diag']:.3f} vs other "
            f"relations {p['off']:.3f} vs random {r}"
        )

    def report_body(self) -> str:
        d = self.data
        s = summary(d)
        rels = d["relations"]
        base = _arr(d["base_accuracy"])
        drop, rnd = _arr(d["drop"])[0], _arr(d["random_mean"])[0]
        lines = [
            f"Neurons were selected on {d['n_selection_prompts']} {d['language']} fact queries "
            f"of {len(d['selection_subjects'])} subjects and evaluated on the other "
            f"{len(d['eval_subjects'])} subjects' trained queries. Accuracy: the argmax of the "
            "next-token logits at the last prompt position equals the answer's first token. "
            "Drop = accuracy without intervention minus accuracy with the neurons zeroed "
            "(positive = worse).",
            "",
            f"| relation ({d['language']}) | base accuracy | chance | own drop | mean drop on "
            "others | random own drop |",
            "|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(rels):
            oth = np.mean([drop[i, j] for j in range(len(rels)) if j != i])
            rr = "n/a" if np.isnan(rnd[i, i]) else f"{rnd[i, i]:.3f}"
            lines.append(
                f"| {r} | {base[0, i]:.3f} | {d['chance'][i]:.3f} | {drop[i, i]:.3f} "
                f"| {oth:.3f} | {rr} |"
            )
        lines += [
            "",
            "| language | queries | mean base accuracy | own drop | drop on others "
            "| random own drop |",
            "|---|---|---|---|---|---|",
        ]
        for li, x in enumerate(d["languages"]):
            r = s[x]["random_diag"]
            lines.append(
                f"| {x} | {d['n_eval_prompts'][x]} | {np.nanmean(base[li]):.3f} | "
                f"{s[x]['diag']:.3f} | {s[x]['off']:.3f} | "
                f"{'n/a' if r is None else f'{r:.3f}'} |"
            )
        lines += [
            "",
            f"Time: {d['seconds']['total']:.1f} s (selection {d['seconds']['selection']:.1f} s).",
        ]
        return "\n".join(lines)

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.relation_neurons.plots import plot_all

        return plot_all(self.data, out)
