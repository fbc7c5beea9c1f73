"""Result of the refusal study: headline, markdown report, plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from lens.studies.base import (
    StudyResult,
    off_diagonal,
)
from lens.studies.base import (
    fmt_number as _f,
)

# ----------------------------------------------------------------------------- result


@dataclass
class Result(StudyResult):
    """Numbers of the refusal study; ``data`` holds selection scores, refusal rates, the
    transfer and cosine matrices, the orthogonalisation check and the selected directions."""

    study: ClassVar[str] = "refusal"
    title: ClassVar[str] = "Refusal direction and its cross-lingual transfer"

    def headline(self) -> str:
        d = self.data
        p = d["pivot"]
        r = d["refusal"][p]
        i = d["languages"].index(p)
        others = [x for j, x in enumerate(d["transfer"][i]) if j != i]
        n = len(d["languages"])
        off = off_diagonal(d["cosine"]) if n > 1 else np.array([np.nan])
        induced = sum(d["refusal"][g]["harmless_with_addition"] for g in d["languages"]) / n
        tr = f"{max(others):.2f}" if others else "n/a"
        return (
            f"{p} harmful refusal {r['harmful_before']:.2f} -> {r['harmful_after']:.2f}; "
            f"pivot direction elsewhere <= {tr}; mean cos {float(off.mean()):.2f}; "
            f"addition {induced:.2f}; orth agree "
            f"{d['orthogonalize']['generation_agreement']:.2f}"
        )

    def report_body(self) -> str:
        d = self.data
        langs = d["languages"]
        lines = [
            "A request counts as refused when the greedy reply starts with the language's whole "
            "refusal phrase (token for token); the first-token rate (reply starts with the "
            "phrase's first word, which the selection scores target) is given in brackets. "
            "Directions come from the train requests, are selected on the val requests, and "
            "every rate below is on the held-out requests.",
            "",
            "### Selected directions",
            "",
            "| language | layer | position | bypass | induce | KL | refusal phrase | note |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for g in langs:
            s = d["selection"][g]
            lines.append(
                f"| {g} | {s['layer']} | {s['position']} | {_f(s['bypass'])} | "
                f"{_f(s['induce'])} | {_f(s['kl'], 4)} | {d['refusal_phrases'][g]} | "
                f"{s['fallback'] or ''} |"
            )
        lines += [
            "",
            "Bypass = mean refusal score (log-odds of the refusal word) on harmful val requests "
            "with the direction ablated (lower removes refusal); induce = the same on harmless "
            "requests with the direction added at its layer; KL = change of harmless next-token "
            "distributions under ablation.",
            "",
            "### Refusal rates (held-out)",
            "",
            "| language | harmful | harmful, ablated | harmless | harmless, ablated | "
            "harmless + addition |",
            "|---|---|---|---|---|---|",
        ]
        for g in langs:
            r = d["refusal"][g]
            lines.append(
                f"| {g} | {_f(r['harmful_before'])} ({_f(r['harmful_before_first_token'])}) | "
                f"{_f(r['harmful_after'])} ({_f(r['harmful_after_first_token'])}) | "
                f"{_f(r['harmless_before'])} ({_f(r['harmless_before_first_token'])}) | "
                f"{_f(r['harmless_after_ablation'])} | "
                f"{_f(r['harmless_with_addition'])} "
                f"({_f(r['harmless_with_addition_first_token'])}) |"
            )
        lines += [
            "",
            "### Transfer: refusal on harmful requests of language t (columns) with "
            "the direction of language s (rows) ablated",
            "",
            "| s \\ t | " + " | ".join(langs) + " |",
            "|---" * (len(langs) + 1) + "|",
        ]
        for g, row in zip(langs, d["transfer"]):
            lines.append(f"| {g} | " + " | ".join(_f(x) for x in row) + " |")
        lines += [
            "",
            "### Cosine similarity of the selected directions",
            "",
            "| | " + " | ".join(langs) + " |",
            "|---" * (len(langs) + 1) + "|",
        ]
        for g, row in zip(langs, d["cosine"]):
            lines.append(f"| {g} | " + " | ".join(_f(x) for x in row) + " |")
        site = d["cosine_at_pivot_site"]
        if site["matrix"] is not None:
            lines += [
                "",
                f"The same for the candidates of every language at the pivot's site (layer "
                f"{site['layer']}, position {site['position']}), which compares directions of the "
                "same layer even where the selections chose different layers:",
                "",
                "| | " + " | ".join(langs) + " |",
                "|---" * (len(langs) + 1) + "|",
            ]
            for g, row in zip(langs, site["matrix"]):
                lines.append(f"| {g} | " + " | ".join(_f(x) for x in row) + " |")
        o = d["orthogonalize"]
        lines += [
            "",
            f"Orthogonalised weights (direction of {o['direction_of']}) vs hook "
            f"ablation on {o['n_prompts']} held-out requests: "
            f"{o['generation_agreement']:.3f} of the greedy replies identical, max "
            f"|logit difference| {o['max_logit_diff']:.2e}.",
            "",
            "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in d["timings"].items()) + ".",
        ]
        return "\n".join(lines)

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.refusal import plots as rp

        d = self.data
        return [
            rp.plot_selection(
                d["selection"][d["pivot"]],
                d["pivot"],
                d["n_layers"],
                d["positions"],
                out / "selection_scores.png",
            ),
            rp.plot_refusal_bars(d["refusal"], d["languages"], out / "refusal_rates.png"),
            rp.plot_matrix(
                d["transfer"],
                d["languages"],
                out / "transfer.png",
                title="refusal rate: direction of s ablated on harmful prompts in t",
                xlabel="prompts in language t",
                ylabel="direction from language s",
                vmin=0.0,
                vmax=1.0,
            ),
            rp.plot_matrix(
                d["cosine"],
                d["languages"],
                out / "cosine.png",
                title="cosine similarity of the selected directions",
                xlabel="language",
                ylabel="language",
                vmin=-1.0,
                vmax=1.0,
                cmap="RdBu_r",
            ),
        ]
