"""``lens patchscope SOURCE "prompt" --target identity``: decode the hidden state of the
prompt's last token (or ``--position``) at every layer by writing it into a target prompt and
reading the model's next token there; writes result.json, arrays.npz and patchscope.png.

``--target`` is a preset (``identity``: "cat -> cat ; ... ; ?"; ``future``: a generic
context, several tokens generated) or a target prompt with the placeholder word ``x`` (e.g.
"The capital city of x is"), where the state is written and a few tokens generated.
"""

from __future__ import annotations

import argparse
from typing import Any

from lens.cli.paths import SOURCE_HELP


def layers_arg(text: str | None) -> Any:
    """``"all"``, None, or a comma list of ints.

    Example:
        >>> layers_arg("0,3,-1"), layers_arg("all"), layers_arg(None)
        ([0, 3, -1], 'all', None)
    """
    if text is None or text == "all":
        return text
    try:
        return [int(x) for x in text.split(",")]
    except ValueError as exc:
        raise ValueError(f"layers must be 'all' or integers like 0,3,-1; got {text!r}") from exc


def position_arg(text: str) -> Any:
    return "last" if text == "last" else int(text)


def target_of(args: argparse.Namespace) -> Any:
    from lens.patchscope import Target, attribute, future, identity

    if args.target == "identity":
        return identity(args.max_new_tokens)
    if args.target == "future":
        return future(args.max_new_tokens or 4)
    if args.placeholder is None:
        return Target(args.target, -1, max_new_tokens=args.max_new_tokens)
    return attribute(args.target, args.placeholder, args.max_new_tokens or 8)


def run(args: argparse.Namespace) -> int:
    from lens.cli.paths import OutputFolder, announce_source

    if not args.prompt.strip():
        raise ValueError("the prompt is empty: give the source text")
    source_layers = layers_arg(args.layers)
    target_layers = layers_arg(args.target_layers)
    announce_source(args.source)
    with OutputFolder(args.out) as folder:
        import lens
        from lens.cli.lens_cmd import load_source
        from lens.patchscope import patchscope

        model = load_source(args.source)
        lens.models.small_model_threads(model)
        result = patchscope(
            model,
            args.prompt,
            target=target_of(args),
            source_layers=source_layers,
            target_layers=target_layers,
            source_position=position_arg(args.position),
            top_k=args.top_k,
            progress=True,
        )
        result.save(folder.path)
        result.plot(folder.path / "patchscope.png")
        token = result.token_str(result.source_token)
        print(f"source token {token!r} (column {result.source_position}), target {args.target!r}")
        for row, (s, t) in enumerate(zip(result.source_layers, result.target_layers)):
            top = ", ".join(
                f"{result.token_str(i)!r} {p:.2f}"
                for i, p in zip(result.top_ids[row, :3], result.top_probs[row, :3])
            )
            text = f"  -> {result.texts[row]!r}" if result.texts is not None else ""
            print(f"layer {int(s):>2} -> {int(t):>2}: {top}{text}")
        out = folder.commit()
    print(f"wrote {folder.shown} ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "patchscope",
        help="decode a prompt's hidden states by patching them into a target prompt",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    p.add_argument("source", help=SOURCE_HELP)
    p.add_argument("prompt", help="the source prompt")
    p.add_argument(
        "--target",
        default="identity",
        help="identity | future | a target prompt (with --placeholder, e.g. 'The capital of x "
        "is') (default identity)",
    )
    p.add_argument("--placeholder", default=None, help="the word of --target that gets the state")
    p.add_argument(
        "--position", default="last", help="source column read: last or an int (default: last)"
    )
    p.add_argument(
        "--layers", default="all", help="source layers: all or e.g. 0,4,8 (default: all)"
    )
    p.add_argument(
        "--target-layers",
        default=None,
        help="target layers (all pairs with --layers); default: each layer into itself",
    )
    p.add_argument("--top-k", type=int, default=5, help="next tokens kept per pair (default 5)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="also generate this many")
    p.add_argument(
        "--out", default="results/patchscope", help="output folder (default: results/patchscope)"
    )
    p.set_defaults(func=run)
