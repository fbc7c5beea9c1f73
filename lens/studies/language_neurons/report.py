"""Result of the language-neuron study: headline, markdown report, plots."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from lens.studies.base import StudyResult, fmt_number


class Result(StudyResult):
    """Numbers of the language-neuron study; see the module docstring."""

    study: ClassVar[str] = "language_neurons"
    title: ClassVar[str] = "Language-specific neurons (LAPE) and their deactivation"

    def headline(self) -> str:
        st, rs = self.data["stats"], self.data["random_stats"]
        return (
            f"own-language loss increase {_nats(st['diag_mean'])} vs others "
            f"{_nats(st['off_mean'])} vs random {_nats(rs['diag_mean'])} nats; own language "
            f"hurt most in {len(st['rows_own_max'])}/{st['n_rows']}"
        )

    def report_body(self) -> str:
        d = self.data
        langs = d["languages"]
        inc = np.array(d["increase"], dtype=float)
        rnd = np.array(d["random_mean"], dtype=float)
        lines = [
            f"LAPE kept {d['n_selected']} of {d['n_neurons_total']} MLP neurons (lowest "
            f"entropy of activation probability across languages, among neurons whose largest "
            f"probability exceeds {d['filter_threshold']:.3f}); a kept neuron belongs to every "
            f"language where its activation probability exceeds {d['activation_bar']:.3f}. "
            f"Texts: {d['corpus']} corpus; statistics and losses use disjoint texts.",
            "",
            "Loss increase = mean next-token cross-entropy (nats) on the held-out texts of a "
            "language with the neurons set to zero, minus the same without intervention. "
            "Random = neurons drawn uniformly with the same count per layer, averaged over "
            "seeds.",
            "",
            "| language | neurons | exclusive | base loss | own increase | mean increase on "
            "others | random own increase |",
            "|---|---|---|---|---|---|---|",
        ]
        for i, lang in enumerate(langs):
            others = [inc[i, j] for j in range(len(langs)) if j != i]
            own = "n/a" if np.isnan(inc[i, i]) else f"{inc[i, i]:.4f}"
            oth = "n/a" if np.isnan(others).any() else f"{np.mean(others):.4f}"
            r = "n/a" if np.isnan(rnd[i, i]) else f"{rnd[i, i]:.4f}"
            lines.append(
                f"| {lang} | {d['n_neurons'][lang]} | {d['n_exclusive'][lang]} | "
                f"{d['base_loss'][i]:.3f} | {own} | {oth} | {r} |"
            )
        lines += [
            "",
            f"Neurons per layer (rows: languages, columns: layers {d['layers']}):",
            "",
            "```",
        ]
        lines += [f"{lang:>10} {row}" for lang, row in zip(langs, d["per_layer"])]
        lines += [
            "```",
            "",
            f"Time: {d['seconds']['total']:.1f} s (selection {d['seconds']['selection']:.1f} s).",
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
