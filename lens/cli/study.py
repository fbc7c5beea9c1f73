"""``lens study NAME`` and ``lens demo``: run studies and write their reports."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _load(source: str) -> Any:
    import lens
    from lens.cli.lens_cmd import load_source

    model = load_source(source)
    lens.models.small_model_threads(model)
    return model


def load_config(module: Any, path: str | None) -> Any:
    """The study's config from a JSON file of overrides (defaults when ``path`` is None);
    errors name the file."""
    from lens.studies.config_types import StudyConfigError

    if path is None:
        return module.Config()
    try:
        return module.Config.from_json(path)
    except StudyConfigError as exc:
        raise StudyConfigError(f"config {exc}") from None  # the message names the file once
    except json.JSONDecodeError as exc:
        raise ValueError(f"config {path} is not valid JSON: {exc}") from exc
    except (ValueError, TypeError, KeyError) as exc:
        from lens.cli import error_line

        raise ValueError(f"config {path}: {error_line(exc)}") from exc


def with_data(module: Any, config: Any, source: str) -> Any:
    """``config`` reading ``source`` (a JSONL file or built-in name), checked before any model
    is loaded: a missing or malformed file, or one of the wrong kind, is a ValueError/OSError."""
    import dataclasses

    from lens.studies.datasets import load_source

    kind = getattr(module.Config, "data_kind", None)
    if kind is None:
        raise ValueError(f"this study reads no dataset: --data does not apply to it ({source})")
    load_source(source, kind)
    return dataclasses.replace(config, data=str(source))


def run_study(args: argparse.Namespace) -> int:
    from lens.cli.paths import check_out_dir
    from lens.studies import STUDIES

    if args.name not in STUDIES:
        raise ValueError(f"unknown study {args.name!r}; choose one of {', '.join(sorted(STUDIES))}")
    out = check_out_dir(args.out or Path("results") / args.name)
    module = STUDIES[args.name]
    config = load_config(module, args.config)
    if getattr(args, "data", None) is not None:
        config = with_data(module, config, args.data)
    model = _load(args.model)
    result = module.run(model, config)
    out = result.save(out)
    print(f"{args.name}: {result.headline()}\nwrote {out}/report.md")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from lens.studies import demo

    out = demo.run_all(Path(args.out), model_source=args.model, quick=args.quick)
    print(f"wrote {out}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("study", help="run one study and write results.json, report.md, plots")
    p.add_argument(
        "name",
        help="causal_tracing | concept_space | fact_consistency | language_neurons | refusal | "
        "relation_neurons (an unknown name lists the installed studies)",
    )
    p.add_argument(
        "--model",
        default="organism",
        help="organism | smollm2-135m-instruct | HF folder (default: organism)",
    )
    p.add_argument("--out", default=None, help="output folder (default: results/NAME)")
    p.add_argument("--config", default=None, help="JSON file of config overrides")
    p.add_argument(
        "--data",
        default=None,
        help="dataset: a JSONL file (see `lens data check`) or a built-in name such as facts "
        "(default: the organism's own data on the organism, lens's real data elsewhere)",
    )
    p.set_defaults(func=run_study)

    d = sub.add_parser("demo", help="all studies on the organism, with an index report")
    d.add_argument("--out", default="results", help="output folder (default: results)")
    d.add_argument("--model", default="organism")
    d.add_argument("--quick", action="store_true", help="reduced configs (seconds, for tests)")
    d.set_defaults(func=run_demo)
