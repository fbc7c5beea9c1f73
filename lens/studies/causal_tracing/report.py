"""Result of the causal tracing study: headline, markdown report, plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lens.plots.common import markdown_table
from lens.studies.base import StudyResult
from lens.studies.base import fmt_number as _num
from lens.studies.causal_tracing.data import CausalTracingData
from lens.studies.causal_tracing.findings import early_site


@dataclass
class Result(StudyResult):
    """Numbers of the causal tracing study (:class:`CausalTracingData`)."""

    study: ClassVar[str] = "causal_tracing"
    title: ClassVar[str] = "Causal tracing of factual recall"
    Data: ClassVar[type[CausalTracingData]] = CausalTracingData
    data: CausalTracingData

    def headline(self) -> str:
        """The recovery of planted truth (if any), then the study's own headline."""
        rec = self.recovery()
        return f"{rec}; {self._headline()}" if rec else self._headline()

    def _headline(self) -> str:
        """Where the early site shows up, in plain words."""
        d = self.data
        traced = [g for g, e in d.languages.items() if e["n_prompts"] > 0]
        empty = [g for g in d.languages if g not in traced]
        shown = [g for g in traced if early_site(g, d.languages[g], d.n_layers)[0]]
        parts = [
            f"the early site (MLP at the last subject token, middle layers) shows up in "
            f"{len(shown)} of {len(traced)} traced languages"
            + (f" ({', '.join(shown)})" if shown else "")
        ]
        for g in traced:
            e = d.languages[g]
            parts.append(
                f"{g}: noising the subject drops the answer's probability "
                f"{_num(e['clean_prob'])} -> {_num(e['corrupt_prob'])}, MLP effect at the last "
                f"subject token peaks at layer {e['mlp_peak_layer']} of {d.n_layers}"
            )
        if empty:
            parts.append(f"nothing to trace in {', '.join(empty)} (no prompt answered right)")
        return "; ".join(parts)

    def report_body(self) -> str:
        d = self.data
        rows = [
            [g, 0, "", "", "", "", ""]
            if e["n_prompts"] == 0
            else [
                g,
                e["n_prompts"],
                _num(e["clean_prob"]),
                _num(e["corrupt_prob"]),
                e["mlp_peak_layer"],
                _num(e["mlp_last_subject_peak"]),
                _num(e["mlp_further_peak"]),
            ]
            for g, e in d.languages.items()
        ]
        table = markdown_table(
            [
                "language",
                "prompts",
                "clean p",
                "noised p",
                "MLP peak layer (last subject)",
                "its effect",
                "MLP peak, further tokens",
            ],
            rows,
        )
        return "\n".join(
            [
                "Indirect effect = answer probability with one state restored minus with the "
                f"subject noised; MLP and attention are restored over windows of {d.window} "
                f"layer{'' if d.window == 1 else 's'} centred on each layer and clipped at the "
                "first and last layer as in ROME (`range(max(0, l - w//2), min(L, l - (-w//2)))`"
                f"). The model has {d.n_layers} layers. Plots: rows are layers, columns token "
                "roles (mean over prompts).",
                "",
                "Noise: " + self.noise_words(),
                "",
                table,
            ]
        )

    def noise_words(self) -> str:
        """Which recipe set the noise std, with each traced language's sigma."""
        d = self.data
        whose = (
            "the token embeddings of each language's fact subjects, each tokenized alone "
            "(ROME's recipe)"
            if d.noise_from == "subjects"
            else "the traced prompts' own token embeddings"
        )
        sigmas = ", ".join(f"{g}: {e['sigma']:.4g}" for g, e in d.languages.items() if "sigma" in e)
        return f"sigma = {d.noise:g} x the std of {whose}" + (f" ({sigmas})." if sigmas else ".")

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.causal_tracing.plots import plot_trace

        return [
            plot_trace(e["by_role"], g, out / f"trace_{g}.png")
            for g, e in self.data.languages.items()
            if e["n_prompts"] > 0
        ]
