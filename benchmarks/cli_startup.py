"""Start-up time of the ``lens`` command: every ``--help`` vs ``python -c pass``.

Each case is a fresh ``python -m lens ... --help`` process, timed interleaved with the
baseline (an empty interpreter) and with ``python -c "import lens"``; ``ratio_median`` is the
per-round ratio to the baseline and ``seconds_median`` the wall time (target: under 0.5 s,
the issue #12 budget; torch + TransformerLens alone take seconds to import).
"""

from __future__ import annotations

import os
import subprocess
import sys
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


def _process(args: list[str]) -> Any:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )

    def fn() -> None:
        subprocess.run([sys.executable, *args], check=True, env=env, capture_output=True, cwd=ROOT)

    return fn


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
    return rows
