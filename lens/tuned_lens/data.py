"""The training stream: a corpus of texts or token-id lists -> steps of token rows.

Each document is tokenized on its own (text: the model's tokenizer and BOS convention, as in
:func:`lens.tokens.batch`; token ids: taken as they are) and cut into rows of at most
``max_length`` tokens. A step takes whole rows until it holds at least ``tokens_per_step``
tokens. A corpus that is a ``Sequence`` is read again when it runs out, each pass in an order
shuffled with ``seed`` (pass 0 included); any other iterable is read once, in its order.
Nothing but token ids is held, and only one step of them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from lens.tokens import batch as make_batch

Rows = list[list[int]]


def _document_ids(model: Any, doc: Any, index: int) -> list[int]:
    if isinstance(doc, Tensor):
        doc = doc.tolist()
    if isinstance(doc, str):
        if not doc:
            raise ValueError(f"corpus document {index} is an empty text")
        return make_batch(model, [doc], device="cpu").tokens[0].tolist()
    if isinstance(doc, (list, tuple)) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in doc
    ):
        if not doc:
            raise ValueError(f"corpus document {index} has no tokens")
        return list(doc)
    raise ValueError(f"corpus document {index}: expected a text or token ids, got {doc!r:.60}")


def _documents(corpus: Iterable[Any], seed: int) -> Iterator[tuple[int, Any]]:
    """(pass, document) pairs, forever for a Sequence, once otherwise."""
    if isinstance(corpus, (str, bytes)):
        raise ValueError("corpus must be a list of texts (or token-id lists), not one string")
    if not isinstance(corpus, Sequence):
        for doc in corpus:
            yield 0, doc
        return
    epoch = 0
    while True:
        order = list(range(len(corpus)))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        for i in order:
            yield epoch, corpus[i]
        epoch += 1
        if not corpus:
            return


def steps(
    model: Any, corpus: Iterable[Any], tokens_per_step: int, max_length: int, seed: int
) -> Iterator[Rows]:
    """Steps of token rows, each holding at least ``tokens_per_step`` tokens.

    Raises a ValueError for an empty corpus, a corpus whose one pass holds fewer tokens
    than one step, and (when the caller asks for another step) an exhausted iterator.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> it = steps(model, [[1, 2, 3], [4, 5, 6, 7, 8]], 4, 2, seed=0)
        >>> sum(len(r) for r in next(it)) >= 4
        True
    """
    rows: Rows = []
    held = 0
    per_pass = {0: 0}
    last_pass = 0
    for index, (epoch, doc) in enumerate(_documents(corpus, seed)):
        if epoch != last_pass:
            if per_pass[last_pass] < tokens_per_step:
                _too_short(per_pass[last_pass], tokens_per_step)
            per_pass[epoch] = 0
            last_pass = epoch
        ids = _document_ids(model, doc, index)
        per_pass[epoch] += len(ids)
        for start in range(0, len(ids), max_length):
            row = ids[start : start + max_length]
            rows.append(row)
            held += len(row)
            if held >= tokens_per_step:
                yield rows
                rows, held = [], 0
    if per_pass[last_pass] == 0:
        raise ValueError("the corpus is empty: give at least one text or token-id list")
    if per_pass[last_pass] < tokens_per_step and last_pass == 0:
        _too_short(per_pass[0], tokens_per_step)
    raise ValueError(
        "the corpus ran out before the last step: pass a list (it is read again, reshuffled) "
        "or ask for fewer steps"
    )


def _too_short(n: int, tokens_per_step: int) -> None:
    raise ValueError(
        f"the corpus holds {n} tokens, fewer than one step ({tokens_per_step} tokens): "
        "give more text or a smaller tokens_per_step"
    )


def pad_rows(rows: Rows, device: Any) -> tuple[Tensor, Tensor]:
    """Right-pad rows (pad id 0, masked) -> ``tokens``, ``attention_mask`` ``[rows, width]``."""
    width = max(len(r) for r in rows)
    tokens = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return tokens.to(device), mask.to(device)


def rows_digest(h: Any, rows: Rows) -> None:
    """Feed one step's rows into a running sha256."""
    for r in rows:
        h.update(torch.tensor(r, dtype=torch.long).numpy().tobytes() + b"\0")


def new_digest() -> Any:
    return hashlib.sha256()
