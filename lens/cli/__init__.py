"""The ``lens`` command line. Each subcommand lives in its own module of this package,
exposing ``register(subparsers)``; add new ones to COMMANDS.

Startup stays cheap: modules import torch / TransformerLens only inside the command that
runs, so every ``--help`` answers at once. A user's mistake (bad path, bad value, bad JSON,
unknown model) prints one line ``lens: error: ...`` and exits 2; set ``LENS_DEBUG=1`` to get
the traceback instead. Output into a closed pipe (``lens ... | head -1``) ends quietly with 0.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

COMMANDS = [
    "lens.cli.info",
    "lens.cli.organism",
    "lens.cli.lens_cmd",
    "lens.cli.study",
    "lens.cli.bench",
    "lens.cli.data",
    "lens.cli.tuned_lens",
    "lens.cli.patch",
    "lens.cli.view",
    "lens.cli.sae",
    "lens.cli.generate",
    "lens.cli.patchscope",
    "lens.cli.circuit",
]
USER_ERRORS = (ValueError, TypeError, KeyError, OSError)  # json errors are ValueErrors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lens",
        description="lens: look inside transformer LMs and change them on purpose.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def error_line(exc: BaseException) -> str:
    """One line for a user's mistake (KeyError's repr quotes are dropped)."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    first = str(text).strip().splitlines()
    return first[0] if first else type(exc).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Warnings from lens (e.g. UnknownTokenWarning) as one ``lens: warning:`` line."""
    if category.__module__.split(".")[0] in ("lens", "interventions"):
        print(f"lens: warning: {message}", file=sys.stderr if file is None else file)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            code = _dispatch(argv)
            sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
            return code
    except BrokenPipeError:  # `lens ... | head`: the reader has all it wanted
        _silence_stdout()
        return 0
    except USER_ERRORS as exc:
        if os.environ.get("LENS_DEBUG"):
            raise
        print(f"lens: error: {error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lens: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush into a closed pipe is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (e.g. captured)
        pass


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["bench"]:  # its options belong to benchmarks.__main__
        from benchmarks.__main__ import main as bench_main

        return bench_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if getattr(args, "out", None) is not None:  # every --out, before any work
        from lens.cli.paths import check_out_dir

        check_out_dir(args.out)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
