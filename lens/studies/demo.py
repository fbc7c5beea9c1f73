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
    "circuit_discovery",
]


# Positive controls: the studies that can be scored against planted truth, and the models they
# run on first (lens.organism.planted): the planted organism, and the negative variant where
# the phenomenon's cross-lingual part is planted absent.
CONTROLS = {
    "concept_space": ["organism-planted", "organism-planted-null"],
    "language_neurons": ["organism-planted"],
    "relation_neurons": ["organism-planted"],
    "refusal": ["organism-planted", "organism-planted-null"],
    "causal_tracing": ["organism-planted", "organism-planted-null"],
    "fact_consistency": ["organism-planted-shortcut", "organism-planted-null"],
}
# the finding the negative control must not reproduce (a phrase of its claim), in the table
NULL_FINDINGS = {
    "refusal": ("every other language", "transfer"),
    "causal_tracing": ("early", "early site"),
    "concept_space": ("Translating between non-pivot", "latent pivot"),
    "fact_consistency": ("linear shortcut that bypasses", "shortcut gain"),
}
# what a study without a planted control says in the controls table, and why
NOT_PLANTED = {
    "circuit_discovery": "not planted in the organism: scored by edge AUROC on models whose "
    "circuit is known (lens.circuits planted and trained, docs/results/circuits_ground_truth.md)"
}


def control_config(name: str, quick: bool) -> Any:
    """The config a positive control runs with: lighter than the full one (the planted effects
    are large); ``quick``: the study's ``quick_config()`` (but causal tracing's, whose 2 noise
    draws can miss the planted pathway: see :mod:`lens.organism.planted_facts`, and
    fact_consistency's, whose few fit prompts make a poor shortcut on any model)."""
    module = STUDIES[name]
    if quick and name not in ("causal_tracing", "fact_consistency"):
        return module.quick_config()
    if name == "language_neurons":
        return module.Config(max_texts=100, n_random_seeds=1)
    if name == "refusal":
        return module.Config(positions=[-1], n_train=24, n_heldout=12)
    if name == "concept_space":  # translation panels only (the planted pivot's task)
        return module.Config(
            sources=["ka", "py"], targets=["mu", "lisp"], max_items=12, fact_scripts=[]
        )
    if name == "relation_neurons":  # selection and one drop matrix, one transfer language
        return module.Config(k_multipliers=[1.0], transfer_languages=["ka"], n_random_seeds=1)
    if name == "causal_tracing":  # the planted facts are in English
        return module.Config(languages=["en"], prompts_per_language=4, samples=3)
    if name == "fact_consistency":  # every fact and script (quick_config's 192 fit prompts
        # make a poor shortcut on any model), no checkpoints (they are the natural organism's)
        return module.Config(checkpoints=False, shortcut_layers=[4] if quick else None)
    return module.Config()


def run_all(
    out: Path,
    model_source: Any = "organism",
    quick: bool = False,
    studies: list[str] | None = None,
    html: bool = True,
    controls: bool | None = None,
) -> Path:
    """Run the studies (full configs, or each module's ``quick_config()``) and write
    ``out/NAME/{results.json,report.md,report.html,*.png}`` and ``out/report.md`` (and the
    index page ``out/report.html`` linking each study's page unless ``html=False``); return the
    index.

    ``controls`` (default: when ``model_source`` is ``"organism"``) first runs the studies of
    :data:`CONTROLS` on the planted organisms (``out/controls/MODEL/NAME/``), and the index
    shows their recovery of the planted truth beside the natural model's headline.

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
    if controls is None:
        controls = model_source == "organism"
    with OutputFolder(out) as folder:
        control_rows = _run_controls(folder.path, names, quick, html) if controls else None
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
        (folder.path / "report.md").write_text(
            index_report(rows, str(model_source), controls=control_rows)
        )
        if html:
            from lens.html.study import index_page

            links = [(name, result, seconds) for name, result, seconds, _ in rows]
            table = controls_table(rows, control_rows) if control_rows else None
            page = index_page(links, model=str(model_source), controls=table)
            page.write(folder.path / "report.html")
    return Path(out) / "report.md"


def _run_controls(
    root: Path, names: list[str], quick: bool, html: bool
) -> list[tuple[str, str, StudyResult, float]]:
    """Every study of :data:`CONTROLS` among ``names`` on its planted models, written to
    ``root/controls/MODEL/NAME``; rows of (name, model, result, seconds)."""
    import lens

    rows = []
    for source in dict.fromkeys(m for n in names for m in CONTROLS.get(n, [])):
        model = lens.load_model(source)
        lens.models.small_model_threads(model)
        for name in [n for n in names if source in CONTROLS.get(n, [])]:
            start = time.perf_counter()
            print(f"== control: {name} on {source}", flush=True)
            result = STUDIES[name].run(model, control_config(name, quick))
            result.write(root / "controls" / source / name, html=html)
            rows.append((name, source, result, time.perf_counter() - start))
    return rows


def controls_table(
    rows: list[tuple[str, StudyResult, float, list[str]]],
    controls: list[tuple[str, str, StudyResult, float]],
) -> str:
    """Side by side per study: the recovery of planted truth on each planted model, then the
    natural model's headline (a study without planted truth says so)."""
    sources = list(dict.fromkeys(source for _, source, _, _ in controls))
    by = {(name, source): result for name, source, result, _ in controls}
    table = []
    for name, result, _, _ in rows:
        cells = []
        for source in sources:
            r = by.get((name, source))
            if r is None:
                first = source == sources[0] and name not in CONTROLS
                cells.append(NOT_PLANTED.get(name, "no planted truth yet") if first else "")
                continue
            words = r.recovery() or "no recovery (no truth found)"
            phrase, label = NULL_FINDINGS.get(name, ("", ""))
            negative = [f for f in r.findings if phrase and phrase in f.claim]
            if source.endswith("-null") and negative:
                mark = "reproduces" if negative[0].reproduced else "does not reproduce"
                words += f"; {label} {mark}"
            cells.append(f"[{words}](controls/{source}/{name}/report.md)")
        table.append([result.title, *cells, result.headline()])
    headers = [
        "study",
        *[
            f"positive control `{s}`" if not s.endswith("-null") else f"negative control `{s}`"
            for s in sources
        ],
        "natural organism",
    ]
    return markdown_table(headers, table)


def index_report(
    rows: list[tuple[str, StudyResult, float, list[str]]],
    model: str,
    controls: list[tuple[str, str, StudyResult, float]] | None = None,
) -> str:
    """The index: one table row per study, then each study's findings and the plots it wrote
    in this run (``rows``: name, result, seconds, PNG file names); with ``controls`` (rows of
    name, planted model, result, seconds) first a side-by-side table of the positive controls."""
    table = markdown_table(
        ["study", "headline", "time (s)"],
        [
            [f"[{result.title}]({name}/report.md)", result.headline(), f"{seconds:.0f}"]
            for name, result, seconds, _ in rows
        ],
    )
    lines = [f"# lens demo on `{model}`", ""]
    if controls:
        seconds = sum(t for *_, t in controls)
        lines += [
            "## Positive controls",
            "",
            "The same studies on the organism with each phenomenon planted by hand "
            "(`lens.organism.planted`; exact truth in its world), scored against that truth, "
            f"beside the natural organism ({seconds:.0f} s).",
            "",
            controls_table(rows, controls),
            "",
            "## Natural organism",
            "",
        ]
    lines.append(table)
    lines += ["", "## Findings", ""]
    for name, result, _, pngs in rows:
        lines.append(f"### {result.title}")
        for f in result.findings:
            mark = "reproduces" if f.reproduced else "does NOT reproduce"
            lines.append(f"- **{mark}** — {f.claim} {f.evidence}")
        lines += [f"![{p}]({name}/{p})" for p in pngs] + [""]
    return "\n".join(lines)
