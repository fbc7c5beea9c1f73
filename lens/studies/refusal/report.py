"""Result of the refusal study: headline, markdown report, plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lens.plots.common import markdown_table
from lens.studies.base import StudyResult, off_diagonal
from lens.studies.base import fmt_number as _f
from lens.studies.refusal.data import RefusalData


@dataclass
class Result(StudyResult):
    """Numbers of the refusal study (:class:`RefusalData`): selection scores, refusal rates,
    the transfer and cosine matrices, the orthogonalisation check and the directions."""

    study: ClassVar[str] = "refusal"
    title: ClassVar[str] = "Refusal direction and its cross-lingual transfer"
    Data: ClassVar[type[RefusalData]] = RefusalData
    data: RefusalData

    def headline(self) -> str:
        """The recovery of planted truth (if any), then the study's own headline."""
        rec = self.recovery()
        return f"{rec}; {self._headline()}" if rec else self._headline()

    def _headline(self) -> str:
        """What happened, in plain words, with the pivot's caveats first."""
        from lens.studies.refusal.findings import filter_failure

        d = self.data
        p, langs = d.pivot, d.languages
        if not d.studied:
            b = (d.baseline or {})[p]
            return (
                f"not studied: the model refuses {b['harmful']:.0%} of harmful {p} requests "
                f"({b['n_harmful']}), below the {d.min_baseline_refusal:.0%} the study needs; "
                "no refusal direction was computed"
            )
        r = d.refusal[p]
        max_rise = self.config.get("max_harmless_rise", 0.1)
        min_drop = self.config.get("min_drop", 0.8)
        parts = [
            f"ablating the {p} direction cuts {p} harmful refusal "
            f"{r['harmful_before']:.2f} -> {r['harmful_after']:.2f}"
        ]
        if r["harmless_after_ablation"] - r["harmless_before"] > max_rise:
            parts[0] += (
                f" but also makes harmless requests refused ({r['harmless_before']:.2f} -> "
                f"{r['harmless_after_ablation']:.2f})"
            )
        failure = filter_failure(d, p)
        if failure:
            parts.append(failure)
        others = [g for g in langs if g != p]
        if others:
            row = d.transfer[langs.index(p)]
            removed = sum(
                d.refusal[t]["harmful_before"] - row[langs.index(t)] >= min_drop for t in others
            )
            parts.append(f"it removes refusal in {removed} of {len(others)} other languages")
            parts.append(
                f"directions of different languages have mean cosine "
                f"{float(off_diagonal(d.cosine).mean()):.2f}"
            )
        induced = sum(d.refusal[g]["harmless_with_addition"] for g in langs) / len(langs)
        parts.append(f"adding a direction makes {induced:.0%} of harmless requests refused")
        o = d.orthogonalize
        same = round(o["generation_agreement"] * o["n_prompts"])
        parts.append(
            f"orthogonalised weights reply as hook ablation on {same} of {o['n_prompts']} requests"
        )
        return "; ".join(parts)

    def report_body(self) -> str:
        d = self.data
        langs = d.languages
        if not d.studied:
            return "\n".join(
                [
                    f"The model's baseline refusal rate of harmful {d.pivot} requests is below "
                    f"the threshold `min_baseline_refusal` = {d.min_baseline_refusal:g}, so the "
                    "study stopped after measuring it: without refusals to remove, a "
                    "harmful - harmless difference of means is not a refusal direction, and "
                    "every finding about it (ablation, transfer, similarity, addition, "
                    "orthogonalisation) would be meaningless. None of them is tested here.",
                    "",
                    baseline_section(d),
                ]
            )
        selected = markdown_table(
            ["language", "layer", "position", "bypass", "induce", "KL", "refusal phrase", "note"],
            [
                [
                    g,
                    s["layer"],
                    s["position"],
                    _f(s["bypass"]),
                    _f(s["induce"]),
                    _f(s["kl"], 4),
                    d.refusal_phrases[g],
                    s["fallback"] or "",
                ]
                for g, s in ((g, d.selection[g]) for g in langs)
            ],
        )

        def both(r: dict, key: str) -> str:
            first = r.get(f"{key}_first_token")
            return _f(r[key]) + ("" if first is None else f" ({_f(first)})")

        rates = markdown_table(
            [
                "language",
                "harmful",
                "harmful, ablated",
                "harmless",
                "harmless, ablated",
                "harmless + addition",
            ],
            [
                [
                    g,
                    both(r, "harmful_before"),
                    both(r, "harmful_after"),
                    both(r, "harmless_before"),
                    both(r, "harmless_after_ablation"),
                    both(r, "harmless_with_addition"),
                ]
                for g, r in ((g, d.refusal[g]) for g in langs)
            ],
        )
        lines = [
            baseline_section(d),
            "",
            "A request counts as refused when the greedy reply starts with the language's whole "
            "refusal phrase (token for token); the first-token rate (reply starts with the "
            "phrase's first word, which the selection scores target) is given in brackets. "
            "Directions come from the train requests, are selected on the val requests, and "
            "every rate below is on the held-out requests.",
            "",
            "### Selected directions",
            "",
            selected,
            "",
            "Bypass = mean refusal score (log-odds of the refusal word) on harmful val requests "
            "with the direction ablated (lower removes refusal); induce = the same on harmless "
            "requests with the direction added at its layer; KL = change of harmless next-token "
            "distributions under ablation.",
            "",
            "### Refusal rates (held-out)",
            "",
            rates,
            "",
            "### Transfer: refusal on harmful requests of language t (columns) with "
            "the direction of language s (rows) ablated",
            "",
            _matrix_table("s \\ t", langs, d.transfer),
            "",
            "### Cosine similarity of the selected directions",
            "",
            _matrix_table("", langs, d.cosine),
        ]
        site = d.cosine_at_pivot_site
        if site["matrix"] is not None:
            lines += [
                "",
                f"The same for the candidates of every language at the pivot's site (layer "
                f"{site['layer']}, position {site['position']}), which compares directions of the "
                "same layer even where the selections chose different layers:",
                "",
                _matrix_table("", langs, site["matrix"]),
            ]
        o = d.orthogonalize
        same = round(o["generation_agreement"] * o["n_prompts"])
        lines += [
            "",
            f"Orthogonalised weights (direction of {o['direction_of']}) vs hook ablation on "
            f"{o['n_prompts']} held-out requests: {same} of {o['n_prompts']} greedy replies "
            f"identical, largest logit difference {o['max_logit_diff']:.2e}.",
            "",
            "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in d.timings.items()) + ".",
        ]
        return "\n".join(lines)

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.refusal import plots as rp

        d = self.data
        if not d.studied:
            return [rp.plot_baseline(d.baseline or {}, d.languages, out / "baseline_refusal.png")]
        return [
            rp.plot_selection(
                d.selection[d.pivot], d.pivot, d.n_layers, d.positions, out / "selection_scores.png"
            ),
            rp.plot_refusal_bars(d.refusal, d.languages, out / "refusal_rates.png"),
            rp.plot_matrix(
                d.transfer,
                d.languages,
                out / "transfer.png",
                title="refusal rate: direction of s ablated on harmful prompts in t",
                xlabel="prompts in language t",
                ylabel="direction from language s",
                vmin=0.0,
                vmax=1.0,
            ),
            rp.plot_matrix(
                d.cosine,
                d.languages,
                out / "cosine.png",
                title="cosine similarity of the selected directions",
                xlabel="language",
                ylabel="language",
                vmin=-1.0,
                vmax=1.0,
                cmap="RdBu_r",
            ),
        ]


def _matrix_table(corner: str, langs: list[str], matrix: list[list[float | None]]) -> str:
    return markdown_table([corner, *langs], [[g, *map(_f, row)] for g, row in zip(langs, matrix)])


def baseline_section(d: RefusalData) -> str:
    """The baseline (every request, no intervention) as a markdown section."""
    if not d.baseline:
        return ""
    b = d.baseline
    table = markdown_table(
        ["language", "harmful refused", "harmless refused", "requests (harmful / harmless)"],
        [
            [
                g,
                f"{_f(b[g]['harmful'])} ({_f(b[g]['harmful_first_token'])})",
                f"{_f(b[g]['harmless'])} ({_f(b[g]['harmless_first_token'])})",
                f"{b[g]['n_harmful']} / {b[g]['n_harmless']}",
            ]
            for g in d.languages
        ],
    )
    lines = [
        "### Baseline: does the model refuse? (every request, no intervention)",
        "",
        f"Requests: `{d.source}`, formatted with {d.prompt_format}. A reply counts as a refusal "
        "when it starts with one of the language's refusal phrases, token for token (first-token "
        "rate in brackets). Study threshold: harmful "
        f"{d.pivot} refusal >= {_f(d.min_baseline_refusal)}.",
        "",
        table,
        "",
        "Refusal phrases: " + "; ".join(f"{g}: {d.refusal_phrases[g]}" for g in d.languages) + ".",
    ]
    examples = [
        f"- ({g}, {cls}) {text!r} -> {reply!r}"
        for g in d.languages
        for cls in ("harmful", "harmless")
        for text, reply in b[g].get(f"{cls}_examples", [])
    ]
    if examples:
        lines += ["", "Greedy replies (first requests of each language and class):", "", *examples]
    return "\n".join(lines)
