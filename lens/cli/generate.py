"""``lens generate SOURCE "prompt" [--intervention FILE.json ...]``: continue a prompt with a
KV cache; with interventions (JSON files written by ``intervention.to_dict()``, one object or a
list of them), the unsteered and steered continuations are printed side by side.

Greedy by default; ``--sample`` draws with ``--temperature``, ``--top-k``, ``--top-p`` and
``--seed``. Without interventions the text is streamed as it is generated.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from lens.cli.paths import SOURCE_HELP


def read_interventions(paths: list[str]) -> list[Any]:
    """The interventions in JSON files (one ``to_dict()`` object or a list per file)."""
    from interventions import from_dict

    out = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"--intervention {name}: no such file")
        try:
            spec = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"--intervention {name}: not JSON ({exc})") from exc
        for item in spec if isinstance(spec, list) else [spec]:
            out.append(from_dict(item))
    return out


def side_by_side(left: str, right: str, width: int = 38) -> str:
    """Two texts in two wrapped columns with headers.

    Example:
        >>> print(side_by_side("a b", "c", width=5))
        unsteered | steered
        --------- | -------
        a b       | c
    """
    a = textwrap.wrap(left, width) or [""]
    b = textwrap.wrap(right, width) or [""]
    a += [""] * (len(b) - len(a))
    b += [""] * (len(a) - len(b))
    w = max(width, len("unsteered"), *(len(x) for x in a))
    lines = [f"{'unsteered':<{w}} | steered", f"{'-' * 9:<{w}} | {'-' * 7}"]
    lines += [f"{x:<{w}} | {y}".rstrip() for x, y in zip(a, b)]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from lens.cli.paths import announce_source

    if not args.prompt.strip():
        raise ValueError("the prompt is empty: give the text to continue")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    steering = read_interventions(args.intervention)  # before the model loads: fail fast
    announce_source(args.source)
    import lens
    from lens.cli.lens_cmd import load_source

    model = load_source(args.source)
    lens.models.small_model_threads(model)
    kw: dict[str, Any] = dict(
        max_new_tokens=args.max_new_tokens,
        stop_at_eos=not args.ignore_eos,
        use_cache=False if args.no_cache else None,
    )
    if args.sample:
        kw.update(do_sample=True, temperature=args.temperature, top_k=args.top_k)
        kw.update(top_p=args.top_p, seed=args.seed)
    if not steering:
        out = lens.generate.generate_tokens(
            model, [args.prompt], stream=lambda row, text: print(text, end="", flush=True), **kw
        )
        print()
        print(f"({int(out.lengths[0])} tokens, {'KV cache' if out.cached else 'no cache'})")
        return 0
    free = lens.generate.generate_tokens(model, [args.prompt], **kw)
    steered = lens.generate.generate_tokens(model, [args.prompt], interventions=steering, **kw)
    print(f"prompt: {args.prompt}")
    print(side_by_side(free.texts(model)[0], steered.texts(model)[0]))
    names = ", ".join(type(i).__name__ for i in steering)
    print(f"(steered by {names}; {'KV cache' if steered.cached else 'no cache'})", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="continue a prompt (KV cache), steered vs unsteered side by side",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    p.add_argument("source", help=SOURCE_HELP)
    p.add_argument("prompt", help="the text to continue")
    p.add_argument(
        "--intervention",
        action="append",
        default=[],
        metavar="FILE.json",
        help="an intervention written by to_dict() (repeatable; a file may hold a list; "
        "default: none)",
    )
    p.add_argument("--max-new-tokens", type=int, default=40, help="tokens to add (default 40)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0, help="with --sample (default 1.0)")
    p.add_argument("--top-k", type=int, default=None, help="with --sample: keep the k likeliest")
    p.add_argument("--top-p", type=float, default=None, help="with --sample: nucleus mass")
    p.add_argument("--seed", type=int, default=None, help="with --sample: reproducible draws")
    p.add_argument("--ignore-eos", action="store_true", help="keep going past end-of-sequence")
    p.add_argument("--no-cache", action="store_true", help="re-run the prefix each step")
    p.set_defaults(func=run)
