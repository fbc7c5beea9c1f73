"""``lens bench [SUITE ...] [--quick] [--out DIR]``: the benchmark suites (see benchmarks/)."""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    from benchmarks.__main__ import main

    return main(args.rest)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark suites: overhead ratios and peak memory (lens bench --help for options)",
        add_help=False,
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)
