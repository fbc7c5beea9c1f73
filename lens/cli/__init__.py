"""The ``lens`` command line. Each subcommand lives in its own module of this package,
exposing ``register(subparsers)``; add new ones to COMMANDS."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = [
    "lens.cli.info",
    "lens.cli.organism",
    "lens.cli.lens_cmd",
    "lens.cli.study",
    "lens.cli.bench",
    "lens.cli.patch",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lens",
        description="lens: look inside transformer LMs and change them on purpose.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its options belong to benchmarks.__main__
        from benchmarks.__main__ import main as bench_main

        return bench_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, ImportError) as exc:
        print(f"lens {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
