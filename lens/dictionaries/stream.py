"""Activations for training, streamed from a model through a bounded shuffle buffer.

Documents are tokenized (texts with the model's tokenizer; token-id lists as given), cut into
rows of at most ``max_length`` tokens, forwarded ``rows_per_forward`` rows at a time (the
forward stops after the dictionary's site), and every real token's activation (BOS dropped
when it was added) goes into a buffer of ``buffer_tokens`` rows. Each batch is drawn from the
buffer at random without replacement (a seeded ``torch.Generator``), and the buffer is refilled
before each draw, so memory is bounded by the buffer whatever the corpus size. The state
(buffer rows, generator, documents consumed) is saved by the trainer's checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

from interventions.dictionary import SAE
from lens.dictionaries.encode import read_sites
from lens.tokens import batch as make_batch
from lens.tokens import default_prepend_bos


def doc_rows(model: Any, doc: Any, max_length: int) -> list[list[int]]:
    """One document as token rows of at most ``max_length`` tokens (BOS first when the model
    prepends one; long documents are split)."""
    if isinstance(doc, str):
        tok = model.tokenizer
        if tok is None:
            raise ValueError("this model has no tokenizer: give token-id lists, not texts")
        ids = list(tok.encode(doc, add_special_tokens=False))
        bos = getattr(tok, "bos_token_id", None)
        lead = [bos] if bos is not None and default_prepend_bos(model) else []
    else:
        ids = [int(t) for t in (doc.tolist() if isinstance(doc, Tensor) else doc)]
        lead = []
    width = max_length - len(lead)
    if width < 2:
        raise ValueError(f"max_length={max_length} leaves no room for tokens")
    return [lead + ids[i : i + width] for i in range(0, len(ids), width) if ids[i : i + width]]


class ActivationBuffer:
    """Rows of ``[x | y]`` activations (``y`` only for a transcoder) drawn at random.

    Args:
        model, sae: the model and the dictionary whose site(s) are read.
        corpus: texts or token-id lists (read once, in order).
        buffer_tokens: rows held at most (plus one forward's worth while refilling).
        max_length, rows_per_forward: row length and rows per forward.
        seed: the generator that draws batches.
        exclude_bos: drop the first token of rows that start with BOS (its activation is an
            outlier every SAE recipe leaves out).
        exclude_first: drop the first position of every row, BOS or not (models such as
            SmolLM2 make any first token an attention sink with a norm ~100x the others').
    """

    def __init__(
        self,
        model: Any,
        sae: SAE,
        corpus: Iterable[Any],
        *,
        buffer_tokens: int,
        max_length: int,
        rows_per_forward: int,
        seed: int,
        exclude_bos: bool = True,
        exclude_first: bool = False,
    ) -> None:
        self.model, self.sae = model, sae
        self.hooks = [sae.in_hook] if sae.in_hook == sae.out_hook else [sae.in_hook, sae.out_hook]
        self.width = sae.d_in * len(self.hooks)
        self.capacity = buffer_tokens
        self.max_length, self.rows_per_forward = max_length, rows_per_forward
        self.exclude_bos = exclude_bos
        self.exclude_first = exclude_first
        self.docs = iter(corpus)
        self.docs_done = 0
        self.exhausted = False
        self.pending: list[list[int]] = []  # rows of the current document not yet forwarded
        self.rows = torch.empty(0, self.width)
        self.gen = torch.Generator().manual_seed(seed)
        self.tokens_read = 0
        self.seconds_reading = 0.0

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Tensor]:
        pending = torch.tensor([t for r in self.pending for t in r + [-1]], dtype=torch.long)
        return {
            "buffer.rows": self.rows,
            "buffer.gen": self.gen.get_state(),
            "buffer.pending": pending,
            "buffer.counts": torch.tensor(
                [self.docs_done, int(self.exhausted), self.tokens_read], dtype=torch.long
            ),
        }

    def restore(self, tensors: dict[str, Tensor], skip: Iterator[Any]) -> None:
        """Load a saved state; ``skip`` yields the documents already consumed (discarded)."""
        self.rows = tensors["buffer.rows"].clone()
        self.gen.set_state(tensors["buffer.gen"])
        docs_done, _exhausted, tokens = tensors["buffer.counts"].tolist()
        flat = tensors["buffer.pending"].tolist()
        self.pending = []
        row: list[int] = []
        for t in flat:
            if t == -1:
                self.pending.append(row)
                row = []
            else:
                row.append(t)
        for i in range(docs_done):
            if next(skip, None) is None:
                raise ValueError(
                    f"the checkpoint had read {docs_done} documents but the corpus now has "
                    f"only {i}; give the corpus it was trained on (or a longer one)"
                )
        # A run whose corpus ran out may be resumed with a longer one: reading goes on where it
        # stopped, and the corpus says again whether it is exhausted.
        self.docs_done, self.exhausted, self.tokens_read = docs_done, False, tokens

    # ------------------------------------------------------------------ filling
    def _next_rows(self) -> list[list[int]]:
        rows: list[list[int]] = []
        while len(rows) < self.rows_per_forward:
            if not self.pending:
                doc = next(self.docs, None)
                if doc is None:
                    self.exhausted = True
                    break
                self.docs_done += 1
                self.pending = doc_rows(self.model, doc, self.max_length)
                continue
            rows.append(self.pending.pop(0))
        return rows

    @torch.no_grad()
    def _refill(self) -> None:
        import time  # noqa: PLC0415

        start = time.perf_counter()
        parts = [self.rows]
        have = self.rows.shape[0]
        while have < self.capacity and not self.exhausted:
            rows = self._next_rows()
            if not rows:
                break
            b = make_batch(self.model, rows, padding_side="right", prepend_bos=False)
            acts = read_sites(self.model, b, self.hooks, self.sae.layer)
            x = torch.cat(acts, dim=-1).float().cpu()
            mask = b.attention_mask.bool().cpu()
            if self.exclude_first:
                mask[:, 0] = False
            elif self.exclude_bos:
                bos = getattr(getattr(self.model, "tokenizer", None), "bos_token_id", None)
                if bos is not None:
                    mask[:, 0] &= b.tokens[:, 0].cpu() != bos
            new = x[mask]
            if not bool(torch.isfinite(new).all()):
                raise ValueError(f"the activations at {self.hooks} hold NaN or inf")
            parts.append(new)
            have += new.shape[0]
            self.tokens_read += int(new.shape[0])
        self.rows = torch.cat(parts) if len(parts) > 1 else self.rows
        self.seconds_reading += time.perf_counter() - start

    def peek(self) -> Tensor:
        """The buffer's rows after filling it (for initial statistics)."""
        self._refill()
        return self.rows

    def next_batch(self, size: int) -> Tensor | None:
        """``size`` rows drawn at random (fewer at the very end; None when all are used)."""
        self._refill()
        n = self.rows.shape[0]
        if n == 0:
            return None
        size = min(size, n)
        chosen = torch.randperm(n, generator=self.gen)[:size]
        out = self.rows[chosen]
        keep = n - size
        taken = torch.zeros(n, dtype=torch.bool)
        taken[chosen] = True
        holes = chosen[chosen < keep]
        tail = torch.arange(keep, n)[~taken[keep:]]
        self.rows[holes] = self.rows[tail]
        self.rows = self.rows[:keep]
        return out
