"""``lens patch SOURCE --clean TEXT --corrupt TEXT --answer TOKEN``: activation (or
attribution) patching of one prompt pair; writes heatmaps, result.json and arrays.npz.

Tokens are single-token strings (e.g. ``" Paris"``) or ids written ``id:123``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

SITES = ("resid_pre", "attn_out", "mlp_out", "z")


def parse_token(text: str | None) -> str | int | None:
    """``"id:42"`` -> 42; any other string is kept as text (it must be one token)."""
    if text is not None and text.startswith("id:") and text[3:].isdigit():
        return int(text[3:])
    return text


def run(args: argparse.Namespace) -> int:
    import numpy as np

    import lens
    from lens.cli.lens_cmd import load_source
    from lens.patching import activation_patching, attribution_patching

    model = load_source(args.source)
    lens.models.small_model_threads(model)
    kw = dict(
        answer=parse_token(args.answer),
        wrong=parse_token(args.wrong),
        sites=args.sites,
        positions=args.positions,
        direction=args.direction,
    )
    if args.method == "exact":
        result = activation_patching(model, [args.clean], [args.corrupt], **kw)
    else:
        result = attribution_patching(model, [args.clean], [args.corrupt], **kw)
    out = result.save(Path(args.out))
    print(
        f"metric: clean {float(result.clean_metric[0]):.4f}, "
        f"corrupt {float(result.corrupt_metric[0]):.4f} ({args.method}, {args.direction})"
    )
    for site in result.sites:
        values = result.values(site)
        flat = int(values.abs().flatten().argmax())
        index = [int(i) for i in np.unravel_index(flat, tuple(values.shape))]
        named = ", ".join(f"{d} {i}" for d, i in zip(result.dims(site), index))
        label = result.position_labels[index[1]]
        print(
            f"{site:>9}: strongest cell {named} ({label!r}) = {float(values.flatten()[flat]):+.3f}"
        )
        result.plot(site, out / f"{site}.png")
    print(f"wrote {out}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("patch", help="activation / attribution patching of a prompt pair")
    p.add_argument(
        "source", help="organism | smollm2-135m-instruct | HF folder | random:llama | random:gpt2"
    )
    p.add_argument("--clean", required=True, help="the prompt where the model is right")
    p.add_argument("--corrupt", required=True, help="same token length, one fact changed")
    p.add_argument("--answer", required=True, help="the clean answer token (text or id:N)")
    p.add_argument("--wrong", default=None, help="the corrupt answer token (text or id:N)")
    p.add_argument("--sites", nargs="+", default=list(SITES), choices=[*SITES, "resid_post"])
    p.add_argument("--method", choices=["exact", "attribution"], default="exact")
    p.add_argument("--direction", choices=["denoise", "noise"], default="denoise")
    p.add_argument("--positions", choices=["all", "last"], default="all")
    p.add_argument("--out", default="results/patch", help="output folder")
    p.set_defaults(func=run)
