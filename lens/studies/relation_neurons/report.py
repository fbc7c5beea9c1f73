"""Result of the relation-neuron study: headline, markdown report, plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from lens.plots.common import markdown_table
from lens.studies.base import StudyResult, fmt_number
from lens.studies.relation_neurons.data import RelationNeuronsData
from lens.studies.relation_neurons.findings import as_array, summary


@dataclass
class Result(StudyResult):
    """Numbers of the relation-neuron study (:class:`RelationNeuronsData`)."""

    study: ClassVar[str] = "relation_neurons"
    title: ClassVar[str] = "Relation-specific neurons (average precision) and their deactivation"
    Data: ClassVar[type[RelationNeuronsData]] = RelationNeuronsData
    data: RelationNeuronsData

    def headline(self) -> str:
        """What zeroing a relation's neurons does to its own recall, in words."""
        d = self.data
        p = summary(d)[d.language]
        rand = p["random_diag"]
        vs_random = (
            "" if rand is None else f", and {rand:.3f} when as many random neurons are zeroed"
        )
        return (
            f"zeroing a relation's {d.k} selected neurons lowers its own accuracy by "
            f"{p['diag']:.3f} on average ({d.language}), the other relations' by "
            f"{p['off']:.3f}{vs_random}; its own relation is hurt most for "
            f"{p['rows_own_max']} of {len(d.relations)} relations"
        )

    def report_body(self) -> str:
        d = self.data
        s = summary(d)
        rels = d.relations
        base = as_array(d.base_accuracy)
        drop, rnd = as_array(d.drop)[0], as_array(d.random_mean)[0]
        per_relation = [
            [
                r,
                f"{base[0, i]:.3f}",
                f"{d.chance[i]:.3f}",
                f"{drop[i, i]:.3f}",
                f"{np.mean([drop[i, j] for j in range(len(rels)) if j != i]):.3f}",
                fmt_number(rnd[i, i], 3),
            ]
            for i, r in enumerate(rels)
        ]
        per_language = [
            [
                x,
                d.n_eval_prompts[x],
                f"{np.nanmean(base[li]):.3f}",
                f"{s[x]['diag']:.3f}",
                f"{s[x]['off']:.3f}",
                fmt_number(s[x]["random_diag"], 3),
            ]
            for li, x in enumerate(d.languages)
        ]
        lines = [
            f"Neurons were selected on {d.n_selection_prompts} {d.language} fact queries "
            f"of {len(d.selection_subjects)} subjects and evaluated on the other "
            f"{len(d.eval_subjects)} subjects' trained queries. Accuracy: the argmax of the "
            "next-token logits at the last prompt position equals the answer's first token. "
            "Drop = accuracy without intervention minus accuracy with the neurons zeroed "
            "(positive = worse).",
            "",
            markdown_table(
                [
                    f"relation ({d.language})",
                    "base accuracy",
                    "chance",
                    "own drop",
                    "mean drop on others",
                    "random own drop",
                ],
                per_relation,
            ),
            "",
            markdown_table(
                [
                    "language",
                    "queries",
                    "mean base accuracy",
                    "own drop",
                    "drop on others",
                    "random own drop",
                ],
                per_language,
            ),
            "",
            f"Time: {d.seconds['total']:.1f} s (selection {d.seconds['selection']:.1f} s).",
        ]
        return "\n".join(lines)

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.relation_neurons.plots import plot_all

        return plot_all(self.data, out)
