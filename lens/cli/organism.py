"""``lens organism train|eval``: train the embedded model organism, or measure one."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _train(args: argparse.Namespace) -> int:
    from lens.organism.train import TrainConfig, train

    cfg = TrainConfig(seed=args.seed, world_seed=args.world_seed, threads=args.threads)
    if args.steps is not None:
        cfg.steps = args.steps
    if args.tiny:
        cfg.n_layers, cfg.d_model, cfg.d_mlp, cfg.batch_size = 1, 32, 64, 8
    result = train(cfg, args.out, progress=not args.quiet)
    from lens.organism.evaluate import summary_line

    print(summary_line(result))
    print(f"saved to {args.out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from lens.organism import load_organism, world
    from lens.organism.evaluate import bridge_logits_fn, measure, summary_line

    folder = args.folder
    model = load_organism(checkpoint=args.checkpoint, folder=folder)
    w = world(folder) if folder else world()
    result = measure(w, bridge_logits_fn(model), model.tokenizer)
    print(json.dumps(result, indent=1) if args.json else summary_line(result))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("organism", help="train or evaluate the embedded model organism")
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
        help="torch CPU threads (1 is fastest on a busy 2-core machine)",
    )
    t.add_argument("--tiny", action="store_true", help="a tiny model (smoke tests)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)
    e = osub.add_parser("eval", help="recall and refusal per language (first-token, exact)")
    e.add_argument("--folder", default=None, help="a trained organism folder (default: shipped)")
    e.add_argument("--checkpoint", type=int, default=None, help="checkpoint index or step")
    e.add_argument("--json", action="store_true", help="print the full JSON")
    e.set_defaults(func=_eval)
