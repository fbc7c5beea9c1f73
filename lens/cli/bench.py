"""``lens bench [SUITE ...] [--quick] [--out DIR]``: the benchmark suites (see benchmarks/).

``lens.cli.main`` hands everything after ``bench`` to ``benchmarks.__main__.main``; this module
only lists the command in ``lens --help``.
"""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    sub.add_parser(
        "bench",
        help="benchmark suites: overhead ratios and peak memory (lens bench --help for options)",
        add_help=False,
    )
