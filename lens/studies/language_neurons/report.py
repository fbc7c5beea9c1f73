"""Result of the language-neuron study: headline, markdown report, plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from lens.plots.common import markdown_table
from lens.studies.base import StudyResult, fmt_number
from lens.studies.language_neurons.data import LanguageNeuronsData


@dataclass
class Result(StudyResult):
    """Numbers of the language-neuron study (:class:`LanguageNeuronsData`)."""

    study: ClassVar[str] = "language_neurons"
    title: ClassVar[str] = "Language-specific neurons (LAPE) and their deactivation"
    Data: ClassVar[type[LanguageNeuronsData]] = LanguageNeuronsData
    data: LanguageNeuronsData

    def headline(self) -> str:
        """The recovery of planted truth (if any), then the study's own headline."""
        rec = self.recovery()
        return f"{rec}; {self._headline()}" if rec else self._headline()

    def _headline(self) -> str:
        """What zeroing a language's neurons does to its own loss, in words."""
        st, rs = self.data.stats, self.data.random_stats
        own, other, rand = st["diag_mean"], st["off_mean"], rs["diag_mean"]
        if own is None:
            return "no language has LAPE neurons to deactivate"

        def than(x: float | None, what: str) -> str:
            if x is None:
                return f"{what}: n/a"
            return f"{'more' if own > x else 'no more'} than {what} ({_nats(x)})"

        other_text = than(other, "it raises the other languages' loss")
        random_text = than(rand, "random neurons do")
        return (
            f"zeroing a language's LAPE neurons raises its own loss by {_nats(own)} nats on "
            f"average: {other_text}, and {random_text}; its own language is hurt most for "
            f"{len(st['rows_own_max'])} of {st['n_rows']} languages"
        )

    def report_body(self) -> str:
        d = self.data
        langs = d.languages
        inc = np.array(d.increase, dtype=float)
        rnd = np.array(d.random_mean, dtype=float)
        rows = []
        for i, lang in enumerate(langs):
            others = [inc[i, j] for j in range(len(langs)) if j != i]
            rows.append(
                [
                    lang,
                    d.n_neurons[lang],
                    d.n_exclusive[lang],
                    f"{d.base_loss[i]:.3f}",
                    _nats(inc[i, i]),
                    "n/a" if np.isnan(others).any() else _nats(float(np.mean(others))),
                    _nats(rnd[i, i]),
                ]
            )
        header = [
            "language",
            "neurons",
            "exclusive",
            "base loss",
            "own increase",
            "mean increase on others",
            "random own increase",
        ]
        per_layer = markdown_table(
            ["language", *(f"layer {x}" for x in d.layers)],
            [[lang, *row] for lang, row in zip(langs, d.per_layer)],
        )
        lines = [
            f"LAPE kept {d.n_selected} of {d.n_neurons_total} MLP neurons (lowest "
            f"entropy of activation probability across languages, among neurons whose largest "
            f"probability exceeds {d.filter_threshold:.3f}); a kept neuron belongs to every "
            f"language where its activation probability exceeds {d.activation_bar:.3f}. "
            f"Texts: {d.corpus} corpus; statistics and losses use disjoint texts.",
            "",
            "Loss increase = mean next-token cross-entropy (nats) on the held-out texts of a "
            "language with the neurons set to zero, minus the same without intervention. "
            "Random = neurons drawn uniformly with the same count per layer, averaged over "
            "seeds.",
            "",
            markdown_table(header, rows),
            "",
            "Neurons per layer:",
            "",
            per_layer,
            "",
            f"Time: {d.seconds['total']:.1f} s (selection {d.seconds['selection']:.1f} s).",
        ]
        return "\n".join(lines)

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.language_neurons.plots import (
            plot_deactivation_matrix,
            plot_layer_distribution,
        )

        return [
            plot_layer_distribution(self.data, out / "layer_distribution.png"),
            plot_deactivation_matrix(self.data, out / "deactivation_matrix.png"),
        ]


def _nats(x: float | None) -> str:
    return fmt_number(x, 4)
