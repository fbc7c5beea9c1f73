"""``lens circuit SOURCE``: the circuit discovery study on a model, from built-in or user pairs.

Checked before the model loads: ``--out``, the config JSON, the pairs file (a ``lens-pairs``
JSONL file or a built-in name) and the model source. Writes results.json, report.md,
faithfulness.png and circuit.png into ``--out`` all at once.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from lens.cli.paths import SOURCE_HELP

METHODS = ("eap", "eap-ig", "exact")


def _methods(text: str) -> list[str]:
    out = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in out if m not in METHODS]
    if not out or bad:
        raise argparse.ArgumentTypeError(
            f"--methods takes a comma-separated list of {', '.join(METHODS)}, got {text!r}"
        )
    return out


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the command line sets (those given)."""
    out: dict[str, Any] = {}
    for key in ("task", "steps", "ig", "ablation", "methods", "batch_size"):
        value = getattr(args, key)
        if value is not None:
            out[key] = value
    if args.pairs is not None:
        out["n_pairs"] = args.pairs
    if args.methods is not None and "default_method" not in out:
        out["default_method"] = "eap-ig" if "eap-ig" in args.methods else args.methods[0]
    return out


def run_circuit(args: argparse.Namespace) -> int:
    from lens.cli.paths import OutputFolder, announce_source
    from lens.cli.study import _load, check_config_json, load_config, with_data, with_progress

    check_config_json(args.config)
    announce_source(args.source)
    with OutputFolder(args.out or Path("results") / "circuit_discovery") as folder:
        from lens.studies import circuit_discovery as cd

        config = cd.quick_config() if args.quick and args.config is None else None
        config = config or load_config(cd, args.config)
        config = dataclasses.replace(with_progress(config, args.config), **overrides(args))
        if args.data is not None:
            config = with_data(cd, config, args.data)
        model = _load(args.source)
        print("running circuit_discovery …", flush=True)
        result = cd.run(model, config)
        result.write(folder.path, html=not args.no_html)
        out = folder.commit()
    print(f"circuit_discovery: {result.headline()}\nwrote {out}/report.md")
    return 0


def register(sub: Any) -> None:
    from lens.cli.view import add_no_html

    p = sub.add_parser(
        "circuit",
        help="find a task's circuit: EAP / EAP-IG edge scores, faithfulness curves, a plot",
    )
    p.add_argument("source", help=SOURCE_HELP)
    p.add_argument(
        "--data",
        default=None,
        help="clean/corrupt pairs: a lens-pairs JSONL file or a built-in name (default: lens's "
        "built-in pairs; the organism's relation facts on the organism)",
    )
    p.add_argument("--task", default=None, help="which task of the data (default: its first)")
    p.add_argument("--pairs", type=int, default=None, help="pairs scored (default 32)")
    p.add_argument(
        "--methods", type=_methods, default=None, help="comma-separated: eap,eap-ig,exact"
    )
    p.add_argument("--steps", type=int, default=None, help="EAP-IG steps (default 5)")
    p.add_argument("--ig", choices=["inputs", "activations"], default=None, help="EAP-IG path")
    p.add_argument(
        "--ablation", choices=["corrupt", "mean"], default=None, help="faithfulness ablation"
    )
    p.add_argument(
        "--batch-size", dest="batch_size", type=int, default=None,
        help="pairs per forward (default: the config's, 8)",
    )  # fmt: skip
    p.add_argument("--config", default=None, help="JSON file of config overrides")
    p.add_argument("--quick", action="store_true", help="a reduced run (seconds)")
    p.add_argument("--out", default=None, help="output folder (default: results/circuit_discovery)")
    add_no_html(p)
    p.set_defaults(func=run_circuit)
