"""``lens demo``: every study on one model, plus an index report linking them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lens.plots.common import markdown_table
from lens.studies.base import STUDIES, StudyResult

ORDER = [
    "concept_space",
    "language_neurons",
    "relation_neurons",
    "refusal",
    "fact_consistency",
    "causal_tracing",
]


def run_all(
    out: Path, model_source: Any = "organism", quick: bool = False, studies: list[str] | None = None
) -> Path:
    """Run the studies (full configs, or each module's ``quick_config()``) and write
    ``out/NAME/{results.json,report.md,*.png}`` and ``out/report.md``."""
    import lens

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = lens.load_model(model_source)
    lens.models.small_model_threads(model)
    names = studies or [n for n in ORDER if n in STUDIES]
    rows: list[tuple[str, StudyResult, float]] = []
    for name in names:
        module = STUDIES[name]
        config = module.quick_config() if quick else module.Config()
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        result = module.run(model, config)
        result.save(out / name)
        rows.append((name, result, time.perf_counter() - start))
    (out / "report.md").write_text(index_report(rows, str(model_source), out))
    return out / "report.md"


def index_report(rows: list[tuple[str, StudyResult, float]], model: str, out: Path) -> str:
    table = markdown_table(
        ["study", "headline", "time (s)"],
        [
            [f"[{result.title}]({name}/report.md)", result.headline(), f"{seconds:.0f}"]
            for name, result, seconds in rows
        ],
    )
    lines = [f"# lens demo on `{model}`", "", table]
    lines += ["", "## Findings", ""]
    for name, result, _ in rows:
        lines.append(f"### {result.title}")
        for f in result.findings:
            mark = "reproduces" if f.reproduced else "does NOT reproduce"
            lines.append(f"- **{mark}** — {f.claim} {f.evidence}")
        pngs = sorted(p.name for p in (out / name).glob("*.png"))
        lines += [f"![{p}]({name}/{p})" for p in pngs] + [""]
    return "\n".join(lines)
