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
    out: Path,
    model_source: Any = "organism",
    quick: bool = False,
    studies: list[str] | None = None,
    html: bool = True,
) -> Path:
    """Run the studies (full configs, or each module's ``quick_config()``) and write
    ``out/NAME/{results.json,report.md,report.html,*.png}`` and ``out/report.md`` (and the
    index page ``out/report.html`` linking each study's page unless ``html=False``); return the
    index.

    Everything is written into a temporary folder beside ``out`` and moved in when every
    study has finished (:class:`lens.output.OutputFolder`): an error or Ctrl-C leaves older
    results in ``out`` untouched, and the index lists only the files this run wrote.
    """
    import lens
    from lens.output import OutputFolder

    names = studies or [n for n in ORDER if n in STUDIES]
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        raise ValueError(f"unknown studies {unknown}; choose from {sorted(STUDIES)}")
    with OutputFolder(out) as folder:
        model = lens.load_model(model_source)
        lens.models.small_model_threads(model)
        rows: list[tuple[str, StudyResult, float, list[str]]] = []
        for i, name in enumerate(names, start=1):
            module = STUDIES[name]
            config = module.quick_config() if quick else module.Config()
            start = time.perf_counter()
            print(f"== {name} ({i}/{len(names)})", flush=True)
            result = module.run(model, config)
            written = result.write(folder.path / name, html=html)
            pngs = [p.name for p in written if p.suffix == ".png"]
            rows.append((name, result, time.perf_counter() - start, pngs))
        (folder.path / "report.md").write_text(index_report(rows, str(model_source)))
        if html:
            from lens.html.study import index_page

            links = [(name, result, seconds) for name, result, seconds, _ in rows]
            index_page(links, model=str(model_source)).write(folder.path / "report.html")
    return Path(out) / "report.md"


def index_report(rows: list[tuple[str, StudyResult, float, list[str]]], model: str) -> str:
    """The index: one table row per study, then each study's findings and the plots it wrote
    in this run (``rows``: name, result, seconds, PNG file names)."""
    table = markdown_table(
        ["study", "headline", "time (s)"],
        [
            [f"[{result.title}]({name}/report.md)", result.headline(), f"{seconds:.0f}"]
            for name, result, seconds, _ in rows
        ],
    )
    lines = [f"# lens demo on `{model}`", "", table]
    lines += ["", "## Findings", ""]
    for name, result, _, pngs in rows:
        lines.append(f"### {result.title}")
        for f in result.findings:
            mark = "reproduces" if f.reproduced else "does NOT reproduce"
            lines.append(f"- **{mark}** — {f.claim} {f.evidence}")
        lines += [f"![{p}]({name}/{p})" for p in pngs] + [""]
    return "\n".join(lines)
