"""``lens data check FILE``: validate a dataset file and print what it holds."""

from __future__ import annotations

import argparse
from typing import Any


def check(args: argparse.Namespace) -> int:
    from lens.data import load_dataset  # noqa: PLC0415  (keeps `lens --help` light)

    ds = load_dataset(args.file)
    print(f"{ds.path or args.file}: {ds.spec.name} v{ds.spec.version}, {len(ds)} records")
    for group, counter in ds.counts().items():
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))
        print(f"  {group:<9} {shown}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("data", help="dataset files: validate and summarise")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = data_sub.add_parser(
        "check",
        help="validate a dataset file (exit 2 with file:line: field on the first bad line) "
        "and print counts per language and relation/label",
    )
    c.add_argument("file", help="a .jsonl dataset file, or a built-in name such as 'facts'")
    c.set_defaults(func=check)
