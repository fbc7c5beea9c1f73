"""Start-up time of the ``lens`` command: every ``--help`` vs ``python -c pass``, and how soon
a model-loading command says something.

Each case is a fresh ``python -m lens ...`` process. The ``--help`` cases are timed interleaved
with the baseline (an empty interpreter) and ``python -c "import lens"``; ``ratio_median`` is
the per-round ratio to the baseline and ``seconds_median`` the wall time (target: under 0.5 s,
the issue #12 budget; torch + TransformerLens alone take seconds to import).

The first-output cases (issue #25) time, over several fresh processes, the seconds until the
first line of ``lens info organism`` appears (stdout or stderr; target <= 1 s), its total time,
and the exit time of ``lens info /nonexistent`` (exit 2, target <= 1 s), as min / median / max.
``python -m benchmarks.cli_startup --root DIR`` runs them against another checkout too
(``before`` = DIR, ``after`` = this one), interleaved round by round.
"""

from __future__ import annotations

import argparse
import os
import selectors
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import interleaved

HELP_COMMANDS = (
    [],
    ["info"],
    ["lens"],
    ["study"],
    ["demo"],
    ["organism"],
    ["organism", "train"],
    ["organism", "eval"],
    ["organism", "examples"],
    ["bench"],
)
ROOT = Path(__file__).resolve().parents[1]
FIRST_OUTPUT = {
    "lens info organism": (["info", "organism"], 0),
    "lens info /nonexistent": (["info", "/nonexistent"], 2),
}


def _env(root: Path) -> dict[str, str]:
    return dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    )


def _process(args: list[str]) -> Any:
    env = _env(ROOT)

    def fn() -> None:
        subprocess.run([sys.executable, *args], check=True, env=env, capture_output=True, cwd=ROOT)

    return fn


def first_output(root: Path, args: list[str], expect: int) -> tuple[float, float]:
    """Seconds until the first output line of ``python -m lens ARGS`` (stdout or stderr) and
    until it exits, in a fresh process run from ``root``; its exit code must be ``expect``."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lens", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(root),
        cwd=root,
    )
    first = None
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    for stream in (proc.stdout, proc.stderr):
        sel.register(stream, selectors.EVENT_READ)
    open_streams = 2
    while open_streams:
        for key, _ in sel.select():
            chunk = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
            if not chunk:
                sel.unregister(key.fileobj)
                open_streams -= 1
            elif first is None:
                first = time.perf_counter() - start
    code = proc.wait()
    total = time.perf_counter() - start
    if code != expect:
        raise RuntimeError(f"lens {' '.join(args)} exited {code}, expected {expect}")
    return (total if first is None else first), total


def first_output_rows(roots: dict[str, Path], rounds: int) -> list[dict[str, Any]]:
    """min / median / max over ``rounds`` fresh processes per (checkout, case), interleaved."""
    times: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(rounds):
        for label, root in roots.items():
            for case, (args, expect) in FIRST_OUTPUT.items():
                first, total = first_output(root, args, expect)
                what = "first line" if expect == 0 else "exit 2"
                times.setdefault((label, case, what), []).append(first if expect == 0 else total)
                if expect == 0:
                    times.setdefault((label, case, "total"), []).append(total)
    rows = []
    for (label, case, what), ts in times.items():
        rows.append(
            {
                "case": f"{case}: {what}"
                + (f" ({label})" if len(roots) > 1 else "")
                + f" [min {min(ts):.2f}, max {max(ts):.2f} s]",
                "seconds_min": min(ts),
                "seconds_median": statistics.median(ts),
                "seconds_max": max(ts),
                "model": "organism",
                "target": "(reported)" if what == "total" else "<= 1 s",
            }
        )
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    cases = {
        "python -c pass": _process(["-c", "pass"]),
        "python -c 'import lens'": _process(["-c", "import lens"]),
    }
    for words in HELP_COMMANDS:
        cases[" ".join(["lens", *words, "--help"])] = _process(["-m", "lens", *words, "--help"])
    rows = interleaved(cases, baseline="python -c pass", rounds=3 if quick else 10, warmup=1)
    for row in rows:
        row["model"] = "-"
        row["target"] = "<= 0.5 s" if row["case"].startswith("lens") else "(reference)"
    return rows + first_output_rows({"this checkout": ROOT}, rounds=2 if quick else 5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="another checkout to compare (before)")
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per case")
    args = parser.parse_args(argv)
    roots = {"after": ROOT} if args.root is None else {"before": Path(args.root), "after": ROOT}
    print(f"{'case':<48} {'min':>6} {'median':>7} {'max':>6}  (seconds)")
    width = 48
    for row in first_output_rows(roots, args.rounds):
        case = row["case"].split(" [")[0]
        print(
            f"{case:<{width}} {row['seconds_min']:>6.2f} {row['seconds_median']:>7.2f} "
            f"{row['seconds_max']:>6.2f}"
        )


if __name__ == "__main__":
    main()
