"""Clean/corrupt prompt pairs prepared for patching: equal-length checks, answer tokens, the
default metric, and position slots (which token each patched cell covers in each pair).

Batches that repeat the pairs (one copy per patched cell) are copy-major: row ``r`` of a
repeated batch is pair ``r % n_pairs``. Metrics receive such batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from lens.inputs import InputError
from lens.tokens import Batch, as_batch, token_ids

Metric = Callable[[Float[Tensor, "batch pos vocab"], Batch], Float[Tensor, " batch"]]
Token = str | int
Direction = Literal["denoise", "noise"]


@dataclass
class LogitDiff:
    """The default metric: logit of ``answer`` minus logit of ``wrong`` (or the answer's logit
    alone) at each row's last real token. Works on copy-major repeated batches."""

    answer: Int[Tensor, " pairs"]
    wrong: Int[Tensor, " pairs"] | None = None
    last_token_only = True  # reads logits at each row's last real token only

    def __call__(self, logits: Tensor, batch: Batch) -> Tensor:
        n_rows = logits.shape[0]
        reps = n_rows // self.answer.shape[0]
        rows = torch.arange(n_rows, device=logits.device)
        last = logits[rows, batch.last_positions.to(logits.device)]
        out = last.gather(1, self.answer.repeat(reps).to(logits.device)[:, None])[:, 0]
        if self.wrong is not None:
            out = out - last.gather(1, self.wrong.repeat(reps).to(logits.device)[:, None])[:, 0]
        return out


def check_metric_output(value: Any, rows: int) -> Tensor:
    if not isinstance(value, Tensor) or tuple(value.shape) != (rows,):
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(
            f"metric returned {shape}; it must return one value per row, shape ({rows},)"
        )
    return value


def repeat(batch: Batch, copies: int) -> Batch:
    """``copies`` copy-major copies of ``batch``."""
    return Batch(
        batch.tokens.repeat(copies, 1), batch.attention_mask.repeat(copies, 1), batch.padding_side
    )


@dataclass
class Pairs:
    """Tokenized pairs plus what every patching method needs from them."""

    clean: Batch
    corrupt: Batch
    metric: Metric
    slots: Int[Tensor, "slots pairs"]  # the padded position each cell covers, per pair
    slot_labels: list[str]
    answer: Int[Tensor, " pairs"] | None = None  # the default metric's ids (None: custom)
    wrong: Int[Tensor, " pairs"] | None = None

    @property
    def n_pairs(self) -> int:
        return len(self.clean)

    def source_target(self, direction: Direction) -> tuple[Batch, Batch]:
        """(run values are taken from, run that is patched)."""
        if direction == "denoise":
            return self.clean, self.corrupt
        if direction == "noise":
            return self.corrupt, self.clean
        raise ValueError(f"direction must be 'denoise' or 'noise', got {direction!r}")


def _slots(positions: Any, pairs: Batch) -> tuple[Tensor, list[int] | None]:
    n, seq = len(pairs), pairs.tokens.shape[1]
    if isinstance(positions, str):
        if positions == "all":
            return torch.arange(seq)[:, None].expand(seq, n).clone(), list(range(seq))
        if positions == "last":
            return pairs.last_positions[None].cpu(), None
        raise ValueError(f"positions must be 'all', 'last' or indices, got {positions!r}")
    ok = isinstance(positions, (int, Sequence)) and not isinstance(positions, bool)
    idx = [positions] if isinstance(positions, int) else list(positions) if ok else []
    if not idx or not all(isinstance(p, int) and not isinstance(p, bool) for p in idx):
        raise ValueError(
            f"positions must be 'all', 'last' or a non-empty list of ints, got {positions!r}"
        )
    bad = [p for p in idx if not -seq <= p < seq]
    if bad:
        raise ValueError(f"positions {bad} out of range; these prompts have positions 0..{seq - 1}")
    idx = [p % seq for p in idx]
    return torch.tensor(idx)[:, None].expand(len(idx), n).clone(), idx


def _label(model: Any, clean: Batch, corrupt: Batch, pos: int) -> str:
    tok = getattr(model, "tokenizer", None)
    a, b = int(clean.tokens[0, pos]), int(corrupt.tokens[0, pos])
    if not bool(clean.attention_mask[0, pos]):
        return f"{pos}:<pad>"

    def text(i: int) -> str:
        return tok.decode([i]) if tok is not None else str(i)

    return f"{pos}:{text(a)}" if a == b else f"{pos}:{text(a)}/{text(b)}"


def prepare(
    model: Any,
    clean: Any,
    corrupt: Any,
    *,
    answer: Token | Sequence[Token] | None,
    wrong: Token | Sequence[Token] | None,
    metric: Metric | None,
    positions: Any,
) -> Pairs:
    """Tokenize (left padding), check equal lengths per pair, build the metric and slots."""
    device = getattr(model.cfg, "device", None) or "cpu"
    clean_b = as_batch(model, clean, padding_side="left", what="clean").to(device)
    corrupt_b = as_batch(model, corrupt, padding_side="left", what="corrupt").to(device)
    if len(clean_b) != len(corrupt_b):
        raise ValueError(f"{len(clean_b)} clean prompts but {len(corrupt_b)} corrupt prompts")
    for i, (a, b) in enumerate(
        zip(clean_b.attention_mask.sum(1).tolist(), corrupt_b.attention_mask.sum(1).tolist())
    ):
        if a != b:
            raise ValueError(
                f"pair {i}: the clean prompt is {a} tokens, the corrupt prompt {b}; "
                "patching needs pairs of equal token length"
            )
    if not torch.equal(clean_b.attention_mask.cpu(), corrupt_b.attention_mask.cpu()):
        raise ValueError("clean and corrupt batches must use the same padding side")
    same = (clean_b.tokens == corrupt_b.tokens).all(1).cpu().nonzero().flatten().tolist()
    if same:
        raise InputError(
            f"pair {same[0]}: the clean and corrupt prompts are the same tokens, so patching "
            "changes nothing (every cell would be 0/0); change a word in the corrupt prompt"
        )
    answer_ids = wrong_ids = None
    if metric is None:
        if answer is None:
            raise ValueError("give answer= (and optionally wrong=), or a metric")
        n = len(clean_b)
        answer_ids = token_ids(model, answer, n=n, what="answer")
        wrong_ids = None if wrong is None else token_ids(model, wrong, n=n, what="wrong")
        if wrong_ids is not None and bool((answer_ids == wrong_ids).any()):
            i = int((answer_ids == wrong_ids).nonzero()[0, 0])
            raise InputError(
                f"pair {i}: answer and wrong are the same token (id {int(answer_ids[i])}), so "
                "their logit difference is 0 on every run; give two different tokens"
            )
        metric = LogitDiff(answer_ids, wrong_ids)
    slots, idx = _slots(positions, clean_b)
    if idx is None:
        labels = ["last"]
    else:
        labels = [_label(model, clean_b, corrupt_b, p) for p in idx]
    return Pairs(clean_b, corrupt_b, metric, slots, labels, answer_ids, wrong_ids)
