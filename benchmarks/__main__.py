"""``python -m benchmarks [SUITE ...] [--quick] [--out DIR]`` (also ``lens bench``).

Writes results.json (machine info + every row), results.md (one table per suite) and
ratios.png (a bar chart of the median ratios with min-max whiskers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.suites import SUITES, run_suites

if TYPE_CHECKING:
    from lens.output import OutputFolder

COLUMNS = [
    "model",
    "case",
    "ratio_median",
    "ratio_min",
    "ratio_max",
    "seconds_median",
    "peak_mb",
    "extra_peak_mb",
    "size_mb",
    "top1_agreement_with_lens",
    "target",
    "miss",
]


def suite_section(name: str, rows: list[dict]) -> list[str]:
    """Markdown lines of one suite; rows missing their target get ``MISS`` in column miss."""
    from benchmarks.harness import markdown_table, target_missed

    parts = [f"## {name} — {SUITES[name][2]}", ""]
    if rows and "skipped" in rows[0]:
        return parts + [f"skipped: {rows[0]['skipped']}", ""]
    if rows and "error" in rows[0]:
        return parts + [f"FAILED: {rows[0]['error']}", ""]
    for row in rows:
        row["miss"] = "MISS" if target_missed(row) else ""
    missed = sum(1 for r in rows if r["miss"])
    note = [f"{missed} row(s) miss their target (column miss)", ""] if missed else []
    return parts + [markdown_table(rows, COLUMNS), ""] + note


def plot_ratios(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if isinstance(r.get("ratio_median"), (int, float))]
    if not rows:
        return
    labels = [f"{r['suite']}: {r.get('model', '')} {r['case']}"[:70] for r in rows]
    med = [r["ratio_median"] for r in rows]
    lo = [r["ratio_median"] - r.get("ratio_min", r["ratio_median"]) for r in rows]
    hi = [r.get("ratio_max", r["ratio_median"]) - r["ratio_median"] for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.5))
    ax.barh(range(len(rows)), med, xerr=[lo, hi], color="tab:blue", alpha=0.8)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("time ratio to the suite's baseline (median, min-max), log scale")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lens bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "suites", nargs="*", metavar="SUITE", help=f"any of {list(SUITES)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="small shapes, few rounds (<2 min)")
    parser.add_argument("--out", default="bench-results", help="output folder")
    args = parser.parse_args(argv)
    names = args.suites or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        parser.error(f"unknown suites {unknown}; valid: {list(SUITES)}")
    from lens.output import OutputFolder

    with OutputFolder(args.out) as folder:  # checked before any work; moved in at the end
        return _run(args, names, folder)


def _run(args: argparse.Namespace, names: list[str], folder: OutputFolder) -> int:
    import torch

    from benchmarks.harness import machine_info

    torch.set_num_threads(1)
    start = time.perf_counter()
    info = machine_info()
    header = [f"# lens bench ({'quick' if args.quick else 'full'})", "", f"Machine: {info}", ""]
    print("\n".join(header), flush=True)
    sections: dict[str, list[str]] = {}

    def show(name: str, rows: list[dict]) -> None:
        sections[name] = suite_section(name, rows)
        print("\n".join(sections[name]), flush=True)

    results = run_suites(names, quick=args.quick, on_suite=show)
    out = folder.path
    all_rows = [r for rows in results.values() for r in rows]
    payload = {
        "machine": info,
        "quick": args.quick,
        "seconds": time.perf_counter() - start,
        "rows": all_rows,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=1, default=str))
    parts = header + [line for name in results for line in sections[name]]
    (out / "results.md").write_text("\n".join(parts))
    plot_ratios(all_rows, out / "ratios.png")
    folder.commit()
    print(f"wrote {folder.shown}/results.json, results.md, ratios.png")
    return 1 if any("error" in r for r in all_rows) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as exc:  # a bad --out: one line, like `lens bench`
        print(f"python -m benchmarks: error: {exc}", file=sys.stderr)
        sys.exit(2)
