"""``lens view DIR``: the path of DIR's report.html (``--open`` opens it in the default
browser); ``--no-html`` on the commands that write reports skips that file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_no_html(parser: Any) -> None:
    """``--no-html``: skip the self-contained report.html written next to the results."""
    parser.add_argument(
        "--no-html",
        action="store_true",
        help="do not write report.html (the self-contained interactive report)",
    )


def find_report(folder: str | Path) -> Path:
    """``folder/report.html`` (or the file itself); a ValueError saying what to do if absent.

    Example:
        >>> find_report("/nonexistent")
        Traceback (most recent call last):
        ...
        ValueError: /nonexistent: no such folder; give a folder written by lens (e.g. lens demo --out DIR)
    """  # noqa: E501
    path = Path(folder).expanduser()
    if path.is_file() and path.suffix == ".html":
        return path.resolve()
    if not path.is_dir():
        raise ValueError(
            f"{folder}: no such folder; give a folder written by lens (e.g. lens demo --out DIR)"
        )
    report = path / "report.html"
    if not report.is_file():
        raise ValueError(
            f"{folder} has no report.html; rerun the command that wrote it without --no-html"
        )
    return report.resolve()


def run(args: argparse.Namespace) -> int:
    report = find_report(args.dir)
    print(report)
    if args.open:
        import webbrowser

        if not webbrowser.open(report.as_uri()):
            print("lens: no browser found to open it; open the path above")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("view", help="print the path of (or open) a folder's report.html")
    p.add_argument("dir", help="a folder written by lens (demo, study, lens, patch, ...)")
    p.add_argument("--open", action="store_true", help="open it in the default browser")
    p.set_defaults(func=run)
