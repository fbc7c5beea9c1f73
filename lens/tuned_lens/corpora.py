"""Built-in corpora for training and evaluating translators, each with a train/held-out split.

* the organism: its own document distribution (:func:`lens.tuned_lens.organism.organism_corpus`);
* any other model: the project's own text samples (:mod:`lens.studies.samples`, natural
  languages and code), the first six texts of every language for training and the last two
  for held-out evaluation;
* a file: ``.jsonl`` (one ``{"text": ...}`` per line) or plain text (one document per
  non-empty line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

Split = Literal["train", "heldout"]
TRAIN_PER_LANGUAGE = 6


def samples_corpus(split: Split) -> list[str]:
    """The project's text samples, split per language (6 train / 2 held out of 8).

    Example:
        >>> len(samples_corpus("train")), len(samples_corpus("heldout"))
        (42, 14)
    """
    from lens.studies.samples import SAMPLES

    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    cut = slice(None, TRAIN_PER_LANGUAGE) if split == "train" else slice(TRAIN_PER_LANGUAGE, None)
    return [text for texts in SAMPLES.values() for text in texts[cut]]


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
