"""Built-in corpora for training and evaluating translators, each with a train/held-out split.

* the organism: its own document distribution (:func:`lens.tuned_lens.organism.organism_corpus`);
* any other model: lens's built-in text samples (``lens.data.load_builtin("texts")``: natural
  languages and code), the last six texts of every language held out for evaluation and the
  rest for training;
* a file: ``.jsonl`` (one ``{"text": ...}`` per line) or plain text (one document per
  non-empty line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

Split = Literal["train", "heldout"]
HELDOUT_PER_LANGUAGE = 6


def samples_corpus(split: Split) -> list[str]:
    """lens's built-in text samples, split per language (the last six of each held out).

    Example:
        >>> train, held = samples_corpus("train"), samples_corpus("heldout")
        >>> len(held), len(set(train) & set(held))
        (42, 0)
    """
    from lens.data import load_builtin

    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    by_language: dict[str, list[str]] = {}
    for record in load_builtin("texts").records:
        by_language.setdefault(record.language, []).append(record.text)
    n = HELDOUT_PER_LANGUAGE
    cut = slice(None, -n) if split == "train" else slice(-n, None)
    return [text for texts in by_language.values() for text in texts[cut]]


def builtin_corpus(source: str, split: Split) -> list[str]:
    """The organism's documents when ``source`` is ``"organism"``, else the text samples."""
    if source == "organism":
        from lens.tuned_lens.organism import N_TRAIN_DOCS, organism_corpus

        return organism_corpus(split, N_TRAIN_DOCS if split == "train" else 500)
    return samples_corpus(split)


def read_corpus(path: str | Path) -> list[str]:
    """Documents of a ``.jsonl`` file (``"text"`` field) or of a text file (one per line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} not found")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix != ".jsonl":
        return lines
    docs = []
    for n, line in enumerate(lines, 1):
        item = json.loads(line)
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise ValueError(f"{path}:{n}: expected an object with a 'text' string")
        docs.append(item["text"])
    return docs
