"""``lens study NAME`` and ``lens demo``: run studies and write their reports.

Everything that can be checked without torch is checked first (study name, ``--out``,
config JSON, data file, model source), then the command says what it loads; results are
written all at once (:mod:`lens.output`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

from lens.cli.paths import SOURCE_HELP


def study_names() -> list[str]:
    """The installed studies, found on disk without importing them (imports cost seconds).

    Example:
        >>> "causal_tracing" in study_names()
        True
    """
    spec = importlib.util.find_spec("lens.studies")
    roots = spec.submodule_search_locations if spec is not None else None
    return sorted(
        p.name
        for root in roots or []
        for p in Path(root).iterdir()
        if (p / "__init__.py").is_file() and not p.name.startswith("_")
    )


def _load(source: str) -> Any:
    import lens
    from lens.cli.lens_cmd import load_source

    model = load_source(source)
    lens.models.small_model_threads(model)
    return model


def check_config_json(path: str | None) -> None:
    """A ValueError naming the file once when ``--config`` is unreadable or not a JSON object
    (its keys and values are checked against the study's config after the imports)."""
    if path is None:
        return
    from lens.config_file import read_json_object

    try:
        read_json_object(path)
    except ValueError as exc:
        raise ValueError(f"config {exc}") from None


def load_config(module: Any, path: str | None) -> Any:
    """The study's config from a JSON file of overrides (defaults when ``path`` is None);
    errors name the file once."""
    if path is None:
        return module.Config()
    check_config_json(path)
    try:
        return module.Config.from_json(path)
    except (ValueError, TypeError, KeyError) as exc:
        from lens.cli import error_line

        text = error_line(exc)
        text = text[len(f"{path}: ") :] if text.startswith(f"{path}: ") else text
        raise ValueError(f"config {path}: {text}") from exc


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


def with_progress(config: Any, path: str | None) -> Any:
    """``config`` with progress bars on (the CLI's rule), unless the config file sets
    ``progress`` itself."""
    import dataclasses

    if path is not None and "progress" in json.loads(Path(path).read_text()):
        return config
    return dataclasses.replace(config, progress=True)


def run_study(args: argparse.Namespace) -> int:
    from lens.cli.paths import OutputFolder, announce_source

    names = study_names()
    if args.name not in names:
        raise ValueError(f"unknown study {args.name!r}; choose one of {', '.join(names)}")
    check_config_json(args.config)
    announce_source(args.model)
    with OutputFolder(args.out or Path("results") / args.name) as folder:
        from lens.studies import STUDIES

        module = STUDIES[args.name]
        config = load_config(module, args.config)
        config = with_progress(config, args.config)
        if getattr(args, "data", None) is not None:
            config = with_data(module, config, args.data)
        model = _load(args.model)
        print(f"running {args.name} …", flush=True)
        result = module.run(model, config)
        result.write(folder.path, html=not args.no_html)
        out = folder.commit()
    html = "" if args.no_html else f" and {out}/report.html"
    print(f"{args.name}: {result.headline()}\nwrote {out}/report.md{html}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from lens.cli.paths import announce_source

    announce_source(args.model)
    from lens.studies import demo

    controls = False if args.no_controls else None
    out = demo.run_all(
        Path(args.out),
        model_source=args.model,
        quick=args.quick,
        html=not args.no_html,
        controls=controls,
    )
    print(f"wrote {out}")
    return 0


MODEL_HELP = f"{SOURCE_HELP} (default: organism)"


def register(sub: Any) -> None:
    from lens.cli.view import add_no_html

    p = sub.add_parser("study", help="run one study and write results.json, report.md, plots")
    p.add_argument(
        "name",
        help="causal_tracing | circuit_discovery | concept_space | fact_consistency | "
        "language_neurons | refusal | relation_neurons (an unknown name lists the installed "
        "studies)",
    )
    p.add_argument("--model", default="organism", help=MODEL_HELP)
    p.add_argument("--out", default=None, help="output folder (default: results/NAME)")
    p.add_argument("--config", default=None, help="JSON file of config overrides (default: none)")
    p.add_argument(
        "--data",
        default=None,
        help="dataset: a JSONL file (see `lens data check`) or a built-in name such as facts "
        "(default: the organism's own data on the organism, lens's real data elsewhere)",
    )
    add_no_html(p)
    p.set_defaults(func=run_study)

    d = sub.add_parser("demo", help="all studies on the organism, with an index report")
    d.add_argument("--out", default="results", help="output folder (default: results)")
    d.add_argument("--model", default="organism", help=MODEL_HELP)
    d.add_argument("--quick", action="store_true", help="reduced configs (seconds, for tests)")
    add_no_html(d)
    d.add_argument(
        "--no-controls",
        action="store_true",
        help="skip the positive controls on the planted organism (run first on 'organism')",
    )
    d.set_defaults(func=run_demo)
