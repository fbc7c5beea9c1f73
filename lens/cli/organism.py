"""``lens organism train|eval|examples``: train the embedded model organism, measure one, or
list prompts it understands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

EVAL_LEGEND = """\
legend:
  recall train    share of fact queries whose first predicted token is the right object word,
                  over (fact, language) pairs seen in training
  recall heldout  the same over pairs never seen in that language (cross-lingual transfer);
                  '-' for the pivot en, which holds nothing out
  refuse harmful  share of held-out harmful requests answered with the language's refusal word
  refuse harmless the same for harmless requests (should stay near 0)
  py, lisp are code notations of the same facts; they have no requests"""


def train_config(args: argparse.Namespace) -> Any:
    """The ``TrainConfig`` of ``lens organism train``'s arguments (unset options: defaults).

    Raises:
        ValueError: a malformed ``--kind-weight``, an invalid size or data mix.
    """
    from lens.organism.train import TrainConfig

    cfg = TrainConfig(seed=args.seed, world_seed=args.world_seed, threads=args.threads)
    if args.steps is not None:
        cfg.steps = args.steps
    if args.tiny:
        cfg.n_layers, cfg.d_model, cfg.d_mlp, cfg.batch_size = 1, 32, 64, 8
    for name in (
        "n_layers",
        "d_model",
        "d_mlp",
        "n_heads",
        "batch_size",
        "pivot_fact_share",
        "parallel_pivot_share",
        "chat_pivot_share",
        "refusal_examples_per_language",
    ):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if args.n_heads is not None:
        cfg.n_kv_heads = args.n_heads
    for item in args.kind_weight or []:
        kind, _, value = item.partition("=")
        if kind not in cfg.kind_weights or not value:
            raise ValueError(
                f"--kind-weight {item!r}: expected KIND=W with KIND in {list(cfg.kind_weights)}"
            )
        try:
            cfg.kind_weights[kind] = float(value)
        except ValueError:
            raise ValueError(f"--kind-weight {item!r}: W must be a number") from None
    cfg.check()  # sizes and data mix validated before the run starts
    return cfg


def _train(args: argparse.Namespace) -> int:
    from lens.organism.train import train

    cfg = train_config(args)
    from lens.cli.paths import OutputFolder

    with OutputFolder(args.out) as folder:  # an interrupted run leaves no half-trained model
        result = train(cfg, folder.path, progress=not args.quiet)
    from lens.organism.evaluate import summary_line

    print(summary_line(result))
    print(f"saved to {args.out}")
    return 0


def _prompt_count(w: Any) -> int:
    from lens.organism.prompts import fact_queries, requests

    return sum(len(fact_queries(w, s)) for s in w.scripts) + sum(
        len(requests(w, lang)) for lang in w.languages
    )


def eval_table(result: dict[str, Any]) -> str:
    """The eval result as one row per language or notation (see EVAL_LEGEND)."""

    def cell(value: Any) -> str:
        return f"{value:.2f}" if isinstance(value, (int, float)) else "-"

    head = f"{'lang':<5} {'recall train':>12} {'recall heldout':>14} "
    head += f"{'refuse harmful':>14} {'refuse harmless':>15}"
    lines = [head]
    for lang, r in result["recall"].items():
        ref = result["refusal"].get(lang, {}).get("heldout", {})
        lines.append(
            f"{lang:<5} {cell(r.get('train')):>12} {cell(r.get('heldout')):>14} "
            f"{cell(ref.get('harmful')):>14} {cell(ref.get('harmless')):>15}"
        )
    return "\n".join(lines)


def _eval(args: argparse.Namespace) -> int:
    from lens.cli.paths import announce_source

    folder = args.folder
    if folder is not None and not (Path(folder) / "world.json").is_file():
        raise ValueError(
            f"--folder {folder}: not a trained organism folder (no world.json); "
            "write one with `lens organism train --out DIR`"
        )
    announce_source(folder or "organism")
    from tqdm.auto import tqdm

    from lens.models import small_model_threads
    from lens.organism import load_organism, world
    from lens.organism.evaluate import bridge_logits_fn, measure

    w = world(folder) if folder else world()
    model = load_organism(checkpoint=args.checkpoint, folder=folder)
    small_model_threads(model)
    logits_fn = bridge_logits_fn(model)
    with tqdm(total=_prompt_count(w), desc="eval", unit="prompt", disable=args.json) as bar:

        def counted(tokens: Any, mask: Any) -> Any:
            out = logits_fn(tokens, mask)
            bar.update(tokens.shape[0])
            return out

        result = measure(w, counted, model.tokenizer)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(eval_table(result))
        print(EVAL_LEGEND)
    return 0


def _examples(args: argparse.Namespace) -> int:
    from lens.organism import world
    from lens.organism.examples import TASKS, examples, format_examples

    items = examples(world(args.folder) if args.folder else world(), per_task=args.n)
    if args.task:
        items = [e for e in items if e.task == args.task]
    if args.lang:
        items = [e for e in items if e.lang == args.lang]
    if not items:
        raise ValueError(f"no examples for task={args.task} lang={args.lang}; tasks: {TASKS}")
    print(format_examples(items))
    print(
        '\ntry: lens lens organism "the job of alice is" --target lawyer\n'
        'natural case works too ("The job of Alice is"); . , ? ( ) become words of their own '
        'that the model reads as part of the prompt, so "The job of Alice is?" is not a fact '
        "prompt (those end with their relation word); words outside the world's vocabulary "
        "become <unk> and are warned about"
    )
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("organism", help="train, evaluate or get example prompts of the organism")
    osub = p.add_subparsers(dest="organism_command", metavar="ACTION", required=True)
    t = osub.add_parser("train", help="train an organism into an HF folder")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--steps", type=int, default=None, help="training steps (default 2000)")
    t.add_argument("--seed", type=int, default=0, help="training seed (init, data order)")
    t.add_argument("--world-seed", type=int, default=0, help="seed of the synthetic world")
    t.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: fastest on a busy 2-core machine)",
    )
    t.add_argument("--tiny", action="store_true", help="a tiny model (smoke tests)")
    for flag, what in (
        ("--n-layers", "layers (default 6)"),
        ("--d-model", "hidden size (default 96)"),
        ("--d-mlp", "MLP width (default 256)"),
        ("--n-heads", "attention heads (default 4)"),
        ("--batch-size", "documents per step (default 48)"),
    ):
        t.add_argument(flag, type=int, default=None, help=what)
    mix = t.add_argument_group("data mix (defaults = the shipped model's documents)")
    mix.add_argument(
        "--kind-weight",
        action="append",
        metavar="KIND=W",
        help="weight of a document kind (facts 0.56, mixed 0.12, parallel 0.10, dictionary "
        "0.08, chat 0.14); repeatable",
    )
    mix.add_argument(
        "--pivot-fact-share",
        type=float,
        default=None,
        help="share of fact documents in the pivot en (default 0.24)",
    )
    mix.add_argument(
        "--parallel-pivot-share",
        type=float,
        default=None,
        help="probability that one side of a parallel document is en (default: random pairs)",
    )
    mix.add_argument(
        "--chat-pivot-share",
        type=float,
        default=None,
        help="share of chat documents in en (default 0.3)",
    )
    mix.add_argument(
        "--refusal-examples-per-language",
        type=int,
        default=None,
        help="keep only this many harmful train requests per non-pivot language (default: all)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)
    e = osub.add_parser("eval", help="recall and refusal per language (first-token, exact)")
    e.add_argument("--folder", default=None, help="a trained organism folder (default: shipped)")
    e.add_argument("--checkpoint", type=int, default=None, help="checkpoint index or step")
    e.add_argument("--json", action="store_true", help="print the full JSON (no progress bar)")
    e.set_defaults(func=_eval)
    x = osub.add_parser("examples", help="valid prompts per language and task, with answers")
    x.add_argument(
        "--task",
        choices=["fact", "request", "translation"],
        default=None,
        help="only this task (default: every task)",
    )
    x.add_argument(
        "--lang",
        default=None,
        help="one language or notation (en, ka, ..., py; default: all of them)",
    )
    x.add_argument("-n", type=int, default=2, help="prompts per task and language (default 2)")
    x.add_argument("--folder", default=None, help="a trained organism folder (default: shipped)")
    x.set_defaults(func=_examples)
