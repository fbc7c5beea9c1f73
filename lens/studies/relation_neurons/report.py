"""Result of the relation-neuron study: headline, markdown report, plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from lens.plots.common import markdown_table
from lens.studies.answers import SkippedAnswer, describe_scoring, skipped_summary
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
        """The recovery of planted truth (if any), then the study's own headline."""
        rec = self.recovery()
        return f"{rec}; {self._headline()}" if rec else self._headline()

    def _headline(self) -> str:
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
            [x, d.n_eval_prompts[x], f"{np.nanmean(base[li]):.3f}"]
            + (
                [
                    f"{s[x]['diag']:.3f}",
                    f"{s[x]['off']:.3f}",
                    fmt_number(s[x]["random_diag"], 3),
                ]
                if x in s
                else ["near-zero baseline: not measured", "", ""]
            )
            for li, x in enumerate(d.languages)
        ]
        flagged = [x for x in d.languages if x not in s]
        lines = [
            f"Data: `{d.source}`. Neurons were selected on {d.n_selection_prompts} "
            f"{d.language} fact queries of {len(d.selection_subjects)} subjects and evaluated "
            f"on the other {len(d.eval_subjects)} subjects' trained queries. "
            + describe_scoring(d.scoring)
            + " (Default `first_token`, the paper's scoring.) Drop = accuracy without "
            "intervention minus accuracy with the neurons zeroed (positive = worse).",
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
        if flagged:
            lines += [
                "",
                f"**Near-zero baseline accuracy in {', '.join(flagged)}** (mean below "
                f"{d.min_accuracy}): the model hardly answers these facts in those languages, "
                "so the transfer test is not run there.",
            ]
        weak = [
            f"{r} ({base[0, i]:.3f})"
            for i, r in enumerate(rels)
            if not base[0, i] >= (d.min_accuracy or 0.0) or base[0, i] == 0.0
        ]
        if weak:
            lines += [
                "",
                f"Relations with near-zero base accuracy in {d.language}: {', '.join(weak)}; "
                "zeroing neurons cannot lower their accuracy, so their own drop is 0 or "
                "negative by construction.",
            ]
        skipped = d.skipped or []
        if skipped:
            why = skipped_summary(
                [SkippedAnswer(0, "", k["answer"], k["reason"]) for k in skipped],
                len(skipped) + sum(d.n_eval_prompts.values()),
            )
            lines += ["", why]
        return "\n".join(lines)

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.relation_neurons.plots import plot_all

        return plot_all(self.data, out)
