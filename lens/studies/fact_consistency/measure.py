"""Recall and cross-lingual consistency of one model (or one shortcut) on prepared queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lens.studies.answers import Answers, AnswerScoring, score_answers, tokenize_answers
from lens.studies.facts import FactQuery


def clc(correct_l: set[int], correct_pivot: set[int]) -> float | None:
    """``|C_L ∩ C_pivot| / |C_L ∪ C_pivot|`` (None when both sets are empty).

    Example:
        >>> clc({1, 2, 3}, {2, 3, 4})
        0.5
    """
    union = correct_l | correct_pivot
    return len(correct_l & correct_pivot) / len(union) if union else None


@dataclass
class Prepared:
    """The queries of every language, their tokenized answers and what was skipped."""

    pivot: str
    queries: dict[str, list[FactQuery]]  # usable queries only, in fact order
    answers: dict[str, Answers]
    skipped: dict[str, list[dict[str, str]]]  # {language: [{"id", "answer", "reason"}]}
    near_zero: list[str]  # languages left out of consistency (set after the baseline)

    def usable(self, language: str) -> set[int]:
        return {q.index for q in self.queries[language]}


def prepare(model: Any, queries: dict[str, list[FactQuery]], pivot: str) -> Prepared:
    """Tokenize every language's answers once; unusable ones are dropped and listed."""
    kept: dict[str, list[FactQuery]] = {}
    answers: dict[str, Answers] = {}
    skipped: dict[str, list[dict[str, str]]] = {}
    for lang, qs in queries.items():
        items = tokenize_answers(model, [q.prompt for q in qs], [q.answer for q in qs])
        kept[lang] = [qs[i] for i in items.kept]
        answers[lang] = items
        skipped[lang] = [
            {"id": qs[s.index].id, "answer": s.answer, "reason": s.reason} for s in items.skipped
        ]
    return Prepared(pivot, kept, answers, skipped, [])


def measure(
    model: Any,
    prep: Prepared,
    scoring: AnswerScoring,
    batch_size: int,
    shortcut: Any = None,
    only: set[int] | None = None,
    given: dict[str, dict[int, tuple[bool, int]]] | None = None,
) -> dict[str, Any]:
    """Recall (all / trained / held out), ``correct`` sets and CLC per language on the facts
    in ``only`` (None: all). ``given``: scores already made (``{lang: {fact: (hit, top1)}}``).

    CLC of a language is computed over the facts whose answer is usable in both it and the
    pivot; languages in ``prep.near_zero`` get no CLC (None)."""
    correct: dict[str, list[int]] = {}
    recall: dict[str, float | None] = {}
    split: dict[str, dict[str, float | None]] = {}
    scores: dict[str, dict[int, tuple[bool, int]]] = {}
    for lang, qs in prep.queries.items():
        rows = [r for r, q in enumerate(qs) if only is None or q.index in only]
        sub = [qs[r] for r in rows]
        if given is not None:
            got = [given[lang][q.index] for q in sub]
        else:
            s = score_answers(
                model,
                prep.answers[lang].subset(rows),
                scoring=scoring,
                shortcut=shortcut,
                batch_size=batch_size,
            )
            got = list(zip(s.hit.tolist(), s.predicted.tolist()))
        hit = [h for h, _ in got]
        correct[lang] = sorted(q.index for q, h in zip(sub, hit) if h)
        recall[lang] = sum(hit) / len(hit) if hit else None
        trained = [h for q, h in zip(sub, hit) if not q.heldout]
        held = [h for q, h in zip(sub, hit) if q.heldout]
        split[lang] = {
            "trained": sum(trained) / len(trained) if trained else None,
            "heldout": sum(held) / len(held) if held else None,
        }
        scores[lang] = {q.index: g for q, g in zip(sub, got)}
    pivot = prep.pivot
    clcs: dict[str, float | None] = {}
    for lang in prep.queries:
        if lang == pivot:
            continue
        both = prep.usable(lang) & prep.usable(pivot)
        mine, theirs = set(correct[lang]) & both, set(correct[pivot]) & both
        clcs[lang] = None if lang in prep.near_zero else clc(mine, theirs)
    others = [r for s in prep.queries if s != pivot and (r := recall[s]) is not None]
    valid = [c for c in clcs.values() if c is not None]
    return {
        "recall": recall,
        "recall_split": split,
        "correct": correct,
        "clc": clcs,
        "mean_recall_others": float(np.mean(others)) if others else None,
        "mean_clc": float(np.mean(valid)) if valid else None,
        "_scores": scores,
    }


def strip(m: dict[str, Any]) -> dict[str, Any]:
    """The JSON part of a :func:`measure` result (private ``_`` keys dropped)."""
    return {k: v for k, v in m.items() if not k.startswith("_")}


def mean_all(recall: dict[str, float | None]) -> float:
    """Mean recall over languages with a value (0.0 when none)."""
    vals = [v for v in recall.values() if v is not None]
    return float(np.mean(vals)) if vals else 0.0
