"""``lens sae train|eval|inspect``: train a TopK SAE (or transcoder) on a model's activations,
score a dictionary folder (lens, SAELens or eai-sparsify format) on held-out text, and draw
feature cards.

``--corpus`` is ``stdlib`` (the running Python's standard library plus lens's built-in texts,
:mod:`lens.data.corpus`; train split for ``train``, held-out split otherwise), ``builtin``
(lens's built-in texts only) or a text file (one document per line).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

from lens.cli.paths import SOURCE_HELP


def _docs(corpus: str, split: str, limit: int | None) -> Any:
    if corpus in ("stdlib", "builtin"):
        from lens.data.corpus import texts

        sources = ["stdlib", "builtin"] if corpus == "stdlib" else ["builtin"]
        docs: Any = texts(split=split, sources=sources)
    else:
        path = Path(corpus).expanduser()
        docs = (line.strip() for line in path.open(encoding="utf-8") if line.strip())
    return docs if limit is None else itertools.islice(docs, limit)


def _check(args: argparse.Namespace) -> None:
    if args.corpus not in ("stdlib", "builtin") and not Path(args.corpus).expanduser().is_file():
        raise FileNotFoundError(
            f"--corpus {args.corpus}: no such file; give stdlib, builtin or a file"
        )
    for name in ("latents", "k", "steps", "batch_size", "docs", "top"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")


def _train(args: argparse.Namespace) -> int:
    from lens.cli.paths import OutputFolder, announce_source

    _check(args)
    announce_source(args.source)
    with OutputFolder(args.out) as folder:
        import lens
        from lens.cli.lens_cmd import load_source

        model = load_source(args.source)
        sae = lens.dictionaries.train(
            model,
            _docs(args.corpus, "train", None),
            site=args.site,
            layer=args.layer,
            n_latents=args.latents,
            k=args.k,
            out_site=args.out_site,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
            exclude_first=args.exclude_first,
            checkpoint=args.checkpoint,
            progress=not args.quiet,
        )
        sae.meta["training"]["corpus"] = args.corpus
        lens.dictionaries.save(sae, folder.path)
        if args.saelens and not isinstance(sae, lens.dictionaries.Transcoder):
            lens.dictionaries.save_saelens(sae, folder.path / "saelens", model_name=args.source)
        out = folder.commit()
    rec = sae.meta["training"]
    print(
        f"trained {sae.describe()}: {rec['steps']} steps, {rec['tokens']} tokens; last step "
        f"L0 {rec['last']['l0']:.1f}, explained variance {1 - rec['last']['fvu']:.3f}, "
        f"dead {rec['last']['dead']:.3f}\nsaved to {out}"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    import contextlib

    from lens.cli.paths import OutputFolder, announce_source

    _check(args)
    announce_source(args.source)
    with OutputFolder(args.out) if args.out else contextlib.nullcontext() as folder:
        import lens
        from lens.cli.lens_cmd import load_source

        model = load_source(args.source)
        sae = lens.dictionaries.load(args.dir, hookpoint=args.hookpoint, strict=not args.no_strict)
        ev = lens.dictionaries.evaluate(
            model,
            sae,
            _docs(args.corpus, "heldout", args.docs),
            exclude_first=args.exclude_first,
            progress=not args.quiet,
        )
        if folder is not None:
            record = {
                **ev.to_json(),
                "source": args.source,
                "dictionary": str(args.dir),
                "corpus": args.corpus,
                "docs": args.docs,
            }
            (folder.path / "evaluation.json").write_text(json.dumps(record, indent=2) + "\n")
            (folder.path / "evaluation.md").write_text(ev.table() + "\n")
            out = folder.commit()
    print(ev.table())
    if args.json:
        print(json.dumps(ev.to_json()))
    if folder is not None:
        print(f"saved to {out}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from lens.cli.paths import OutputFolder, announce_source

    _check(args)
    announce_source(args.source)
    with OutputFolder(args.out) as folder:
        import lens
        from lens.cli.lens_cmd import load_source
        from lens.dictionaries.inspection import feature_card, plot_card

        model = load_source(args.source)
        sae = lens.dictionaries.load(args.dir, hookpoint=args.hookpoint, strict=not args.no_strict)
        docs = list(_docs(args.corpus, "heldout", args.docs))
        cards = []
        for f in args.feature:
            card = feature_card(model, sae, f, docs, top=args.top)
            plot_card(card, folder.path / f"feature_{f}.png")
            (folder.path / f"feature_{f}.json").write_text(json.dumps(card.to_json(), indent=2))
            cards.append(card.html_card())
        if not args.no_html:
            from lens.html.features import feature_cards_view
            from lens.html.page import Report

            page = Report(f"feature cards of {args.dir}", f"model {args.source}")
            page.add(feature_cards_view(cards))
            page.write(folder.path / "report.html")
        out = folder.commit()
    print(f"{len(args.feature)} feature card(s) saved to {out}")
    return 0


def register(sub: Any) -> None:
    from lens.cli.view import add_no_html

    p = sub.add_parser("sae", help="train / evaluate / inspect sparse dictionaries")
    ssub = p.add_subparsers(dest="sae_command", metavar="ACTION", required=True)
    corpus_help = "stdlib (default), builtin, or a text file with one document per line"
    t = ssub.add_parser("train", help="train a TopK SAE (or transcoder) on one site")
    t.add_argument("source", help=SOURCE_HELP)
    t.add_argument("--out", required=True, help="folder for the dictionary")
    t.add_argument("--layer", type=int, required=True, help="block (negative: from the end)")
    t.add_argument("--site", default="resid_post", help="site read (default resid_post)")
    t.add_argument("--out-site", default=None, help="train a transcoder predicting this site")
    t.add_argument("--latents", type=int, default=4608, help="dictionary width (default 4608)")
    t.add_argument("--k", type=int, default=32, help="active latents per token (default 32)")
    t.add_argument("--steps", type=int, default=None, help="steps (default: the whole corpus)")
    t.add_argument("--batch-size", type=int, default=1024, help="tokens per step (default: 1024)")
    t.add_argument("--corpus", default="stdlib", help=corpus_help)
    t.add_argument("--seed", type=int, default=0, help="initialisation and shuffling seed")
    t.add_argument("--checkpoint", default=None, help="checkpoint file to resume from / write")
    t.add_argument(
        "--exclude-first",
        action="store_true",
        help="train without the first position of every row (default: only a BOS is left out)",
    )
    t.add_argument("--saelens", action="store_true", help="also write a SAELens folder")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)
    for name, fn, text in (
        ("eval", _eval, "score a dictionary on held-out text"),
        ("inspect", _inspect, "draw feature cards"),
    ):
        e = ssub.add_parser(name, help=text)
        e.add_argument("source", help="the model the dictionary belongs to")
        e.add_argument("dir", help="dictionary folder (lens, SAELens or eai-sparsify format)")
        e.add_argument("--hookpoint", default=None, help="sub-folder of a sparsify checkpoint")
        e.add_argument("--corpus", default="stdlib", help=corpus_help)
        e.add_argument("--docs", type=int, default=200, help="held-out documents (default: 200)")
        e.add_argument("--quiet", action="store_true", help="no progress bar")
        e.add_argument(
            "--no-strict",
            action="store_true",
            help="use the dictionary even if this model's weights differ from the ones it was "
            "trained on (same shape, e.g. a fine-tuned copy; default: refuse)",
        )
        if name == "eval":
            e.add_argument("--json", action="store_true", help="also print the JSON")
            e.add_argument(
                "--out", default=None, help="folder for evaluation.json and .md (default: none)"
            )
            e.add_argument(
                "--exclude-first",
                action="store_true",
                help="leave the first position of every document out (default: only a BOS)",
            )
        else:
            e.add_argument(
                "--feature",
                type=int,
                action="append",
                required=True,
                help="feature index (repeat for several)",
            )
            e.add_argument("--top", type=int, default=8, help="contexts per card (default: 8)")
            e.add_argument("--out", required=True, help="folder for the cards")
            add_no_html(e)
        e.set_defaults(func=fn)
