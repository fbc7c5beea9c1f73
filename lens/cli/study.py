"""``lens study NAME`` and ``lens demo``: run studies and write their reports."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _load(source: str) -> Any:
    import lens
    from lens.cli.lens_cmd import load_source

    model = load_source(source)
    lens.models.small_model_threads(model)
    return model


def run_study(args: argparse.Namespace) -> int:
    from lens.studies import STUDIES

    module = STUDIES[args.name]
    config = module.Config.from_json(args.config) if args.config else module.Config()
    model = _load(args.model)
    result = module.run(model, config)
    out = result.save(Path(args.out))
    print(f"{args.name}: {result.headline()}\nwrote {out}/report.md")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from lens.studies import demo

    out = demo.run_all(Path(args.out), model_source=args.model, quick=args.quick)
    print(f"wrote {out}")
    return 0


def register(sub: Any) -> None:
    from lens.studies import STUDIES

    p = sub.add_parser("study", help="run one study and write results.json, report.md, plots")
    p.add_argument("name", choices=sorted(STUDIES))
    p.add_argument(
        "--model",
        default="organism",
        help="organism | smollm2-135m-instruct | HF folder (default: organism)",
    )
    p.add_argument("--out", default=None, help="output folder (default: results/NAME)")
    p.add_argument("--config", default=None, help="JSON file of config overrides")
    p.set_defaults(func=lambda a: run_study(_default_out(a, Path("results") / a.name)))

    d = sub.add_parser("demo", help="all studies on the organism, with an index report")
    d.add_argument("--out", default="results", help="output folder (default: results)")
    d.add_argument("--model", default="organism")
    d.add_argument("--quick", action="store_true", help="reduced configs (seconds, for tests)")
    d.set_defaults(func=run_demo)


def _default_out(args: argparse.Namespace, default: Path) -> argparse.Namespace:
    if args.out is None:
        args.out = str(default)
    return args
