"""``lens info SOURCE``: what a model is, in one screen."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lens.cli.paths import SOURCE_HELP


def describe(model: Any) -> dict[str, Any]:
    """Architecture facts of a loaded bridge as a JSON-safe dict."""
    from lens.hooks import hook_points

    cfg = model.cfg
    return {
        "architecture": getattr(cfg, "architecture", None) or type(model).__name__,
        "n_layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "d_mlp": cfg.d_mlp,
        "n_heads": cfg.n_heads,
        "n_key_value_heads": getattr(cfg, "n_key_value_heads", None) or cfg.n_heads,
        "d_vocab": cfg.d_vocab,
        "n_ctx": cfg.n_ctx,
        "normalization": cfg.normalization_type,
        "positional_embedding": getattr(cfg, "positional_embedding_type", None),
        "act_fn": cfg.act_fn,
        "hook_points": len({id(h) for h in hook_points(model).values()}),
        "hook_names_with_aliases": len(hook_points(model)),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer": type(model.tokenizer).__name__ if model.tokenizer is not None else None,
    }


def hook_names(model: Any) -> list[str]:
    """Every hook name, layers folded: ``blocks.{l}.hook_resid_post`` stands for l = 0..n-1;
    an alias is followed by ``= target`` (the name its hook reports)."""
    import re

    from lens.hooks import hook_points

    def fold(name: str) -> str:
        return re.sub(r"^blocks\.\d+\.", "blocks.{l}.", name)

    shown = []
    for name, hook in hook_points(model).items():
        target = getattr(hook, "name", None) or name
        shown.append(fold(name) if target == name else f"{fold(name)} = {fold(target)}")
    return list(dict.fromkeys(shown))


def run(args: argparse.Namespace) -> int:
    from lens.cli.paths import announce_source

    announce_source(args.source)  # refuse a bad source, and say what loads, before torch
    from lens.cli.lens_cmd import load_source

    model = load_source(args.source)
    if args.hooks:
        names = hook_names(model)
        if args.json:
            print(json.dumps(names, indent=1))
        else:
            print(f"{len(names)} hook names (blocks.{{l}}: l = 0..{model.cfg.n_layers - 1}):")
            print("\n".join(f"  {n}" for n in names))
        return 0
    info = describe(model)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            shown = (
                f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
            )
            print(f"{key:<{width}}  {shown}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("info", help="architecture, sizes, hook points and parameter count")
    p.add_argument(
        "source",
        help=SOURCE_HELP,
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--hooks", action="store_true", help="list the hook names (layers folded)")
    p.set_defaults(func=run)
