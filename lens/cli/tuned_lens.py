"""``lens tuned-lens train|eval``: train translators for a model, or compare them with the
logit lens on held-out text (table, JSON and the paper-style KL plot).

``--corpus builtin`` is the organism's own documents for ``organism`` and the project's text
samples for any other model (train split for ``train``, held-out split for ``eval``); a FILE
is ``.jsonl`` (``{"text": ...}`` per line) or plain text (one document per line).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Literal

from lens.cli.paths import SOURCE_HELP


def _corpus(source: str, corpus: str, split: Literal["train", "heldout"]) -> list[str]:
    from lens.tuned_lens.corpora import builtin_corpus, read_corpus

    return builtin_corpus(source, split) if corpus == "builtin" else read_corpus(corpus)


def _check_corpus(corpus: str) -> None:
    """A FileNotFoundError for a ``--corpus`` file that does not exist (before any import)."""
    if corpus != "builtin" and not Path(corpus).expanduser().is_file():
        raise FileNotFoundError(
            f"--corpus {corpus}: no such file; give a .jsonl or text file, or builtin"
        )


def _train(args: argparse.Namespace) -> int:
    from lens.cli.paths import OutputFolder, announce_source

    if args.steps < 1 or args.tokens_per_step < 1:
        raise ValueError("--steps and --tokens-per-step must be at least 1")
    _check_corpus(args.corpus)
    if args.checkpoint is not None and Path(args.checkpoint).is_dir():
        raise ValueError(f"--checkpoint {args.checkpoint} is a folder: give a file path")
    announce_source(args.source)
    with OutputFolder(args.out) as folder:
        return _train_into(args, folder)


def _train_into(args: argparse.Namespace, folder: Any) -> int:
    from lens.cli.lens_cmd import load_source
    from lens.tuned_lens import train

    model = load_source(args.source)
    docs = _corpus(args.source, args.corpus, "train")
    tuned = train(
        model,
        docs,
        steps=args.steps,
        tokens_per_step=args.tokens_per_step,
        seed=args.seed,
        checkpoint=args.checkpoint,
        progress=not args.quiet,
    )
    tuned.record["corpus"] = args.corpus if args.corpus != "builtin" else f"builtin ({args.source})"
    tuned.save(folder.path)
    out = folder.commit()
    kl = ", ".join(f"{x:.3f}" for x in tuned.record["last_step_kl_bits"])
    print(
        f"trained {len(tuned.layers)} translators: {tuned.record['steps']} steps, "
        f"{tuned.record['tokens']} tokens, {tuned.record['seconds']:.1f} s; "
        f"last-step KL per layer (bits): {kl}\nsaved to {out}"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    import contextlib

    from lens.cli.lens_cmd import check_tuned
    from lens.cli.paths import OutputFolder, announce_source

    check_tuned(args.dir)
    _check_corpus(args.corpus)
    announce_source(args.source)
    with OutputFolder(args.out) if args.out else contextlib.nullcontext() as folder:
        return _eval_into(args, folder)


def _eval_into(args: argparse.Namespace, folder: Any) -> int:
    import lens
    from lens.cli.lens_cmd import load_source

    model = load_source(args.source)
    tuned = lens.tuned_lens.load(args.dir)
    docs = _corpus(args.source, args.corpus, "heldout")
    result = lens.tuned_lens.evaluate(model, docs, translator=tuned, progress=not args.quiet)
    print(result.table())
    if folder is not None:
        result.save(folder.path / "comparison.json")
        result.plot(folder.path / "kl.png", title=f"{args.source}: logit lens vs tuned lens")
        if not args.no_html:
            _html(model, tuned, docs, result, folder.path)
        folder.commit()
        html = "" if args.no_html else " and report.html"
        print(f"saved comparison.json, kl.png{html} in {folder.shown}")
    if args.json:
        print(json.dumps(result.to_dict()))
    return 0


def _html(model: Any, tuned: Any, docs: list[str], result: Any, out: Path) -> None:
    """report.html: the KL / CE curves and both lenses of the first held-out text (its
    first 32 tokens) with a toggle."""
    import lens
    from lens.html.reports import tuned_eval_report
    from lens.tokens import batch

    views = []
    if docs:
        ids = batch(model, [docs[0][:400]]).tokens[0, :32].tolist()  # BOS included if any
        b = batch(model, [ids])
        plain = lens.logit_lens(model, b, positions="all", top_k=5)
        views = [plain, lens.logit_lens(model, b, positions="all", top_k=5, translator=tuned)]
    tuned_eval_report(result, folder=out, lens_results=views)


def register(sub: Any) -> None:
    p = sub.add_parser("tuned-lens", help="train / evaluate tuned-lens translators")
    tsub = p.add_subparsers(dest="tuned_lens_command", metavar="ACTION", required=True)
    t = tsub.add_parser("train", help="train one affine translator per layer")
    t.add_argument("source", help=SOURCE_HELP)
    t.add_argument(
        "--corpus",
        default="builtin",
        help='training text: a .jsonl file ({"text": ...} per line), a text file (one '
        "document per line), or builtin = the organism's documents on organism, the "
        "project's text samples elsewhere (default builtin)",
    )
    t.add_argument("--out", required=True, help="folder for translators + tuned_lens.json")
    t.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100)")
    t.add_argument(
        "--tokens-per-step", type=int, default=2048, help="tokens per step (default 2048)"
    )
    t.add_argument("--seed", type=int, default=0, help="corpus shuffling seed (default 0)")
    t.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint file: resumed from when it exists, written during training "
        "(default: none)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)
    e = tsub.add_parser("eval", help="per-layer KL and CE: logit lens vs tuned lens")
    e.add_argument("source", help="the model the translators were trained on")
    e.add_argument("dir", help="translators folder, or organism (the shipped ones)")
    e.add_argument(
        "--corpus",
        default="builtin",
        help="held-out text: a .jsonl or text file, or builtin (its held-out split; "
        "default builtin)",
    )
    e.add_argument(
        "--out",
        default=None,
        help="folder for comparison.json, kl.png and report.html (default: none, table only)",
    )
    from lens.cli.view import add_no_html

    add_no_html(e)
    e.add_argument("--json", action="store_true", help="also print the JSON")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=_eval)
