"""``lens patch SOURCE --clean TEXT --corrupt TEXT --answer TOKEN``: activation (or
attribution) patching of one prompt pair; writes heatmaps, result.json and arrays.npz.

Tokens are single-token strings (e.g. ``" Paris"``) or ids written ``id:123``. The metric is
the logit difference ``logit(answer) - logit(wrong)`` at the last token (the answer's logit
alone without ``--wrong``); each cell is normalised so that 0 is the corrupted run and 1 the
clean one.
"""

from __future__ import annotations

import argparse
from typing import Any

from lens.cli.paths import SOURCE_HELP

SITES = ("resid_pre", "attn_out", "mlp_out", "z")
BAND = 0.05  # cells within 5 % of the strongest are reported together


def metric_name(answer: str, wrong: str | None) -> str:
    """The default metric in words.

    Example:
        >>> metric_name(" Paris", " Rome")
        "logit difference logit(' Paris') - logit(' Rome') at the last token"
    """
    if wrong is None:
        return f"logit({answer!r}) at the last token"
    return f"logit difference logit({answer!r}) - logit({wrong!r}) at the last token"


def strongest(values: Any, dims: tuple[str, ...], labels: list[str], band: float = BAND) -> str:
    """The strongest cell by absolute value, or the band of cells within ``band`` (a share of
    the maximum) of it when there are several, in words.

    Example:
        >>> import torch
        >>> v = torch.tensor([[0.1, 0.2], [0.99, 0.0], [1.0, 0.3], [0.97, 0.1]])
        >>> print(strongest(v, ("layer", "position"), ["a", "b"]))
        3 cells within 5 % of the strongest (+1.000): layer 1 at 'a'; layer 2 at 'a'; layer 3 at 'a'
        >>> strongest(v[:2], ("layer", "position"), ["a", "b"])
        "strongest cell layer 1, position 0 ('a') = +0.990"
    """
    import numpy as np

    data = values.double().numpy()
    magnitude = np.nan_to_num(np.abs(data), nan=-1.0)
    peak = magnitude.max()
    flat = int(magnitude.argmax())
    index = np.unravel_index(flat, data.shape)
    close = np.argwhere(magnitude >= (1 - band) * peak)
    if len(close) <= 1:
        named = ", ".join(f"{d} {int(i)}" for d, i in zip(dims, index))
        return f"strongest cell {named} ({labels[int(index[1])]!r}) = {data[index]:+.3f}"

    def cell(at: Any) -> str:
        named = " ".join(f"{d} {int(i)}" for d, i in zip(dims, at) if d != "position")
        return f"{named} at {labels[int(at[1])]!r}"

    shown = [cell(at) for at in close[:8]] + (["…"] if len(close) > 8 else [])
    return (
        f"{len(close)} cells within {band * 100:.0f} % of the strongest ({data[index]:+.3f}): "
        + "; ".join(shown)
    )


def run(args: argparse.Namespace) -> int:
    from lens.cli.paths import OutputFolder, announce_source

    for name in ("clean", "corrupt"):
        if not getattr(args, name).strip():
            raise ValueError(f"--{name} is empty: give the prompt text")
    announce_source(args.source)
    with OutputFolder(args.out) as folder:
        return _run(args, folder)


def _run(args: argparse.Namespace, folder: Any) -> int:
    import lens
    from lens.cli.lens_cmd import load_source
    from lens.patching import activation_patching, attribution_patching

    model = load_source(args.source)
    lens.models.small_model_threads(model)
    kw = dict(
        answer=args.answer,  # lens.tokens.token_id reads 'id:N' too
        wrong=args.wrong,
        sites=args.sites,
        positions=args.positions,
        direction=args.direction,
    )
    if args.method == "exact":
        result = activation_patching(model, [args.clean], [args.corrupt], progress=True, **kw)
    else:
        result = attribution_patching(model, [args.clean], [args.corrupt], **kw)
    result.save(folder.path)
    print(
        f"metric: {metric_name(args.answer, args.wrong)}: "
        f"clean {float(result.clean_metric[0]):.4f}, "
        f"corrupt {float(result.corrupt_metric[0]):.4f} "
        f"({'activation' if args.method == 'exact' else 'attribution'} patching, {args.direction}; "
        "cells normalised: 0 = corrupt, 1 = clean)"
    )
    for site in result.sites:
        line = strongest(result.values(site), result.dims(site), result.position_labels)
        print(f"{site:>9}: {line}")
        result.plot(site, folder.path / f"{site}.png")
    if not args.no_html:
        from lens.html.reports import patch_report

        patch_report(result, folder=folder.path)
    out = folder.commit()
    print(f"wrote {folder.shown} ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "patch",
        help="activation / attribution patching of a prompt pair",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    p.add_argument("source", help=SOURCE_HELP)
    p.add_argument("--clean", required=True, help="the prompt where the model is right")
    p.add_argument("--corrupt", required=True, help="same token length, one fact changed")
    p.add_argument("--answer", required=True, help="the clean answer token (text or id:N)")
    p.add_argument(
        "--wrong",
        default=None,
        help="the corrupt answer token (text or id:N); default: none, the metric is then the "
        "answer's logit alone",
    )
    p.add_argument(
        "--sites",
        nargs="+",
        default=list(SITES),
        choices=[*SITES, "resid_post"],
        metavar="SITE",
        help=f"what to patch, any of {[*SITES, 'resid_post']} (default: {' '.join(SITES)}); "
        "head = each attention head's output",
    )
    p.add_argument(
        "--method",
        choices=["exact", "attribution"],
        default="exact",
        help="exact = one forward per cell (activation patching); attribution = its linear "
        "estimate from one backward pass (default exact)",
    )
    p.add_argument(
        "--direction",
        choices=["denoise", "noise"],
        default="denoise",
        help="denoise = run the corrupt prompt with one clean cell; noise = run the clean "
        "prompt with one corrupt cell (default denoise)",
    )
    p.add_argument(
        "--positions",
        choices=["all", "last"],
        default="all",
        help="patch every position, or only the last token (default all)",
    )
    p.add_argument(
        "--out",
        default="results/patch",
        help="output folder for result.json, arrays.npz and one heatmap per site "
        "(default results/patch)",
    )
    from lens.cli.view import add_no_html

    add_no_html(p)
    p.set_defaults(func=run)
