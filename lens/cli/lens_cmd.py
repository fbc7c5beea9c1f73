"""``lens lens SOURCE "prompt"``: the logit lens of one prompt, as a table and plots.

Prints one line per layer for the prompt's last token (top-1 and its probability, entropy,
the target's probability and rank, the top-k), and with ``--out DIR`` saves the result
(JSON + npz) and writes ``grid.png`` (top-1 token per layer and position) and, when a target
is given, ``mass.png``.

Random sources (``random:llama``, ``random:gpt2``) have no tokenizer; they get a byte-level
one (UTF-8 bytes are ids 0..255, id 256 is BOS), which fits their 257-token vocabulary.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lens.cli.paths import SOURCE_HELP


class ByteTokenizer:
    """UTF-8 bytes as token ids 0..255 and BOS = 256 (for random models without a tokenizer).

    Example:
        >>> tok = ByteTokenizer()
        >>> tok.encode("hé", add_special_tokens=False), tok.decode([104, 195, 169])
        ([104, 195, 169], 'hé')
    """

    bos_token_id = 256
    eos_token_id = None
    pad_token_id = None

    def __len__(self) -> int:
        return 257

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids = list(text.encode("utf-8"))
        return [self.bos_token_id, *ids] if add_special_tokens else ids

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        ids = [int(i) for i in ids]
        text = bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
        return text if skip_special_tokens or 256 not in ids else "<s>" + text

    def __call__(
        self,
        texts: list[str],
        add_special_tokens: bool = False,
        return_offsets_mapping: bool = False,
    ) -> dict[str, list]:
        ids, offsets = [], []
        for text in texts:
            row: list[int] = []
            spans: list[tuple[int, int]] = []
            for i, char in enumerate(text):
                encoded = char.encode("utf-8")
                row.extend(encoded)
                spans.extend([(i, i + 1)] * len(encoded))
            ids.append(row)
            offsets.append(spans)
        out: dict[str, list] = {"input_ids": ids}
        if return_offsets_mapping:
            out["offset_mapping"] = offsets
        return out


def load_source(source: str) -> Any:
    """``lens.load_model`` of a CLI source; ``random:FAMILY`` gets a :class:`ByteTokenizer`."""
    import lens

    if source.startswith("random:"):
        model = lens.load_model(lens.tiny_config(source.split(":", 1)[1]))
        model.tokenizer = ByteTokenizer()  # boot_native accepts only HF tokenizers
        return model
    return lens.load_model(source)


TOKEN_WIDTH = 12  # longest token text shown in the table; longer ones end in an ellipsis


def _line_width() -> int:
    import shutil

    return max(80, shutil.get_terminal_size((100, 24)).columns)


def short_token(text: str, width: int = TOKEN_WIDTH) -> str:
    """``repr`` of a token's text, shortened to ``width`` characters with an ellipsis.

    Example:
        >>> short_token("trumpet"), short_token("a-very-long-token-text")
        ("'trumpet'", "'a-very-lon…")
    """
    shown = repr(text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def format_table(result: Any, row: int = 0, position: int = -1, shown_k: int = 10) -> str:
    """A title line naming the method (logit or tuned lens), then one block per layer for
    prompt ``row`` at decoded position ``position``: rank 0 (the top-1 token), its probability,
    the entropy, the target's probability and rank, then the tokens of rank 1..k-1 (each
    shortened, wrapped onto more lines when needed)."""
    has_target = result.target_probs is not None
    head = f"{'layer':>5}  {'rank 0':<{TOKEN_WIDTH}} {'p':>6} {'entropy':>7}"
    if has_target:
        head += f"  {'p(target)':>9} {'rank':>5}"
    method = getattr(result, "method", "logit lens")
    lines = [f"{method}, {result.site}:", head + "  ranks 1..k-1 (rank 0 = top-1)"]
    indent = len(head) + 2
    width = _line_width()
    for i, layer in enumerate(result.layers):
        ids = result.top_ids[i, row, position]
        probs = result.top_probs[i, row, position]
        top1 = short_token(result.token_str(ids[0]))
        line = f"{layer:>5}  {top1:<{TOKEN_WIDTH}} {probs[0]:>6.3f}"
        line += f" {result.entropy[i, row, position]:>7.3f}"
        if has_target:
            line += (
                f"  {result.target_probs[i, row, position]:>9.4f}"
                f" {result.target_ranks[i, row, position]:>5d}"
            )
        line += "  "
        for rank, t in enumerate(ids[1:shown_k], start=1):
            cell = f"{rank}:{short_token(result.token_str(t))}"
            if len(line) + len(cell) > width and len(line) > indent:
                lines.append(line.rstrip())
                line = " " * indent
            line += cell + " "
        lines.append(line.rstrip())
    return "\n".join(lines)


def reject_empty(prompt: str) -> None:
    """A ValueError for a prompt with no text."""
    if not prompt.strip():
        raise ValueError('the prompt is empty: give some text, e.g. "the job of alice is"')


def check_prompt(model: Any, prompt: str, source: str) -> Any:
    """The prompt as a lens Batch, after rejecting an empty one or one longer than the
    model's context (the error says the limit)."""
    from lens.inputs import InputError
    from lens.tokens import batch

    reject_empty(prompt)
    try:
        return batch(model, [prompt])  # the input gate checks the length
    except InputError as e:
        raise InputError(f"{source}: {e}") from None


def check_tuned(tuned: str | None) -> None:
    """A ValueError unless ``--tuned`` is ``organism`` or an existing folder."""
    if tuned is not None and tuned != "organism" and not Path(tuned).expanduser().is_dir():
        raise ValueError(
            f"--tuned {tuned}: no such folder; give a folder written by "
            "`lens tuned-lens train`, or organism (the shipped translators)"
        )


def run(args: argparse.Namespace) -> int:
    import contextlib

    from lens.cli.paths import OutputFolder, announce_source

    reject_empty(args.prompt)  # before loading the model
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    check_tuned(args.tuned)
    announce_source(args.source)
    with OutputFolder(args.out) if args.out else contextlib.nullcontext() as folder:
        return _run(args, folder)


def _run(args: argparse.Namespace, folder: Any) -> int:
    import lens

    model = load_source(args.source)
    prompt_batch = check_prompt(model, args.prompt, args.source)
    targets = [args.target] if args.target is not None else None
    result = lens.logit_lens(
        model,
        prompt_batch,
        positions="all",
        top_k=args.top_k,
        targets=targets,
        site=args.site,
        norm=args.norm,
        translator=lens.tuned_lens.load(args.tuned) if args.tuned else None,
        progress=True,
    )
    last = int(result.valid[0].nonzero()[0][-1])
    cfg = model.cfg
    print(
        f"{args.source}: {cfg.n_layers} layers, d_model {cfg.d_model}, vocab {cfg.d_vocab}\n"
        f"prompt tokens: {result.valid[0].sum()}  last token: "
        f"{result.token_str(result.input_ids[0, last])!r}  site: {result.site}"
    )
    if targets is not None and result.target_ids is not None:
        first = result.token_str(result.target_ids[0])
        print(f"target: {first!r} (first token of {args.target!r})")
        if not first.strip():
            print(
                "note: that token is whitespace only; SentencePiece tokenizers mark the space "
                "themselves, so try the target without its leading space"
            )
    print(format_table(result, 0, last, args.top_k))
    if folder is not None:
        result.save(folder.path)
        written = [result.plot_grid(folder.path / "grid.png")]
        if targets is not None:
            written.append(result.plot_mass(folder.path / "mass.png", row=0, position=last))
        if not args.no_html:
            written.append(_html(model, prompt_batch, result, args, targets, folder.path))
        folder.commit()
        names = ", ".join(p.name for p in written)
        print(f"saved result.json, arrays.npz and {names} in {folder.shown}")
    return 0


def _html(model: Any, prompt_batch: Any, result: Any, args: Any, targets: Any, out: Any) -> Any:
    """report.html: with --tuned, the plain logit lens too (a toggle in the page)."""
    import lens
    from lens.html.reports import lens_report

    results = [result]
    if args.tuned:
        plain = lens.logit_lens(
            model, prompt_batch, positions="all", top_k=args.top_k, targets=targets,
            site=args.site, norm=args.norm,
        )  # fmt: skip
        results = [plain, result]
    return lens_report(model, prompt_batch, results=results, folder=out)


def register(sub: Any) -> None:
    p = sub.add_parser("lens", help="logit lens of a prompt: per-layer top tokens, plots")
    p.add_argument(
        "source",
        help=SOURCE_HELP,
    )
    p.add_argument("prompt", help="the prompt text")
    p.add_argument("--top-k", type=int, default=10, help="top tokens per layer (default 10)")
    p.add_argument(
        "--target", default=None, help="target string; its first token is tracked (e.g. ' Paris')"
    )
    p.add_argument(
        "--site",
        default="resid_post",
        choices=["resid_post", "resid_pre", "resid_mid"],
        help="which residual stream each layer reads: resid_post = output of block L, "
        "resid_pre = its input (default resid_post)",
    )
    p.add_argument(
        "--norm",
        default="recompute",
        choices=["recompute", "none"],
        help="final norm before the unembedding: recompute = with each vector's own "
        "statistics, none = skip it (default recompute)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="folder for result.json, arrays.npz, plots and report.html (default: none, "
        "table only)",
    )
    p.add_argument(
        "--tuned",
        default=None,
        help="decode with a tuned lens: a translators folder (lens tuned-lens train) or "
        "organism (the shipped ones); default: none, the plain logit lens",
    )
    from lens.cli.view import add_no_html

    add_no_html(p)
    p.set_defaults(func=run)
