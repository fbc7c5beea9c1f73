"""The ``lens-pairs`` format: clean/corrupt prompt pairs for patching and circuit discovery.

A record is one pair: ``clean`` (the prompt whose behaviour is explained; its next token should
be ``answer``), ``corrupt`` (a prompt of the same token length that changes the one thing the
task depends on, so its next token would be ``wrong``), the ``task`` it belongs to (``"ioi"``,
``"induction"``, a relation ...) and its ``language``. Equal token length is a property of a
tokenizer, so it is checked when a model reads the pairs, not in the file.

Example:
    >>> from lens.data import parse_lines
    >>> ds = parse_lines(['{"format": "lens-pairs", "version": 1}',
    ...     '{"task": "ioi", "language": "en", "clean": "Ann and Bob met. Bob thanked",'
    ...     ' "corrupt": "Ann and Bob met. Ann thanked", "answer": " Ann", "wrong": " Bob"}'])
    >>> ds.kind, ds.records[0].answer
    ('pairs', ' Ann')
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class PairRecord:
    """A clean/corrupt prompt pair with the clean run's answer and the corrupt run's one.

    Example:
        >>> PairRecord("ioi", "en", "Ann and Bob met. Bob thanked", "Ann and Bob met. Ann thanked",
        ...            " Ann", " Bob").task
        'ioi'
    """

    task: str
    language: str
    clean: str
    corrupt: str
    answer: str
    wrong: str


def check_pair(obj: dict[str, str]) -> tuple[str, str] | None:
    """``(field, message)`` for a pair record that cannot be used, else None."""
    if obj["clean"] == obj["corrupt"]:
        return "corrupt", "the corrupt prompt equals the clean one: patching would change nothing"
    if obj["answer"] == obj["wrong"]:
        return "wrong", "wrong equals answer: their logit difference is 0 on every run"
    return None


# Built-in IOI-style pairs (written for lens): the corrupt prompt swaps the repeated name (S2)
# for the other one, so the name the clean prompt points to (IO) becomes the repeated one.
NAMES = [
    "Mary",
    "John",
    "Tom",
    "Anna",
    "Sam",
    "Lucy",
    "Ben",
    "Kate",
    "Max",
    "Sarah",
    "Jack",
    "Emma",
]
PLACES = ["park", "store", "school", "beach", "garden", "market", "house", "zoo"]
OBJECTS = ["ball", "book", "drink", "cake", "hat", "toy", "flower", "letter"]
IOI_TEMPLATES = [
    "When {a} and {b} went to the {place}, {s} gave a {obj} to",
    "Then {a} and {b} had a long day at the {place}. {s} gave the {obj} to",
    "After {a} and {b} got to the {place}, {s} handed the {obj} to",
    "{a} and {b} were at the {place}. {s} wanted to give a {obj} to",
]
WORDS = ["red", "cat", "sun", "tree", "milk", "door", "bird", "fish", "moon", "star", "boat",
         "shoe", "cup", "bed", "dog", "rain"]  # fmt: skip


def ioi_pairs(n: int = 64, seed: int = 0) -> list[PairRecord]:
    """``n`` IOI-style pairs: clean ``... A and B ... B gave X to`` (answer `` A``), corrupt
    ``... A and B ... A gave X to`` (answer `` B``).

    Example:
        >>> ioi_pairs(1)[0].clean
        'When Ben and Emma went to the park, Emma gave a hat to'
    """
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.sample(NAMES, 2)
        fill = dict(a=a, b=b, place=rng.choice(PLACES), obj=rng.choice(OBJECTS))
        template = IOI_TEMPLATES[i % len(IOI_TEMPLATES)]
        clean, corrupt = template.format(s=b, **fill), template.format(s=a, **fill)
        out.append(PairRecord("ioi", "en", clean, corrupt, f" {a}", f" {b}"))
    return out


# Story-style IOI pairs for small TinyStories models, whose tokenizers split most names: the two
# names of a pair are picked to have equal token counts in small sentencepiece vocabularies
# (Lily/Tim: one token each in stories260k; Tom/Sam/Ben: two, with distinct first tokens).
STORY_NAME_PAIRS = [("Lily", "Tim"), ("Tom", "Sam"), ("Tom", "Ben"), ("Sam", "Ben")]
STORY_TEMPLATES = [
    "{a} and {b} went to the {place}. {s} gave the {obj} to",
    "{a} and {b} played in the {place}. {s} gave a {obj} to",
    "One day, {a} and {b} were at the {place}. {s} gave the {obj} to",
    "{a} and {b} found a {obj} in the {place}. {s} gave it to",
]
STORY_PLACES = ["park", "garden", "house", "school"]
STORY_OBJECTS = ["ball", "toy", "cake", "flower"]


def story_ioi_pairs(n: int = 32, seed: int = 0) -> list[PairRecord]:
    """``n`` IOI pairs in TinyStories style (task ``ioi-story``), names from
    :data:`STORY_NAME_PAIRS` in both orders.

    Example:
        >>> story_ioi_pairs(1)[0].clean
        'Lily and Tim went to the park. Tim gave the ball to'
    """
    rng = random.Random(seed + 2)
    out = []
    for i in range(n):
        a, b = STORY_NAME_PAIRS[i % len(STORY_NAME_PAIRS)]
        a, b = (a, b) if (i // len(STORY_NAME_PAIRS)) % 2 == 0 else (b, a)
        fill = dict(a=a, b=b, place=STORY_PLACES[(i // 8) % 4], obj=STORY_OBJECTS[(i // 2) % 4])
        template = STORY_TEMPLATES[(i // 4) % len(STORY_TEMPLATES)]
        clean, corrupt = template.format(s=b, **fill), template.format(s=a, **fill)
        out.append(PairRecord("ioi-story", "en", clean, corrupt, f" {a}", f" {b}"))
    rng.shuffle(out)
    return out


def induction_pairs(n: int = 32, seed: int = 0) -> list[PairRecord]:
    """``n`` induction pairs over words: ``w1 .. w5. w1 .. w4`` (answer `` w5``); the corrupt
    prompt has another word in place of the first ``w5`` (answer that word).

    Example:
        >>> induction_pairs(1)[0].clean
        'milk star bed cup cat. milk star bed cup'
    """
    rng = random.Random(seed + 1)
    out = []
    for _ in range(n):
        ws = rng.sample(WORDS, 6)
        first, swap = " ".join(ws[:5]), " ".join([*ws[:4], ws[5]])
        tail = " ".join(ws[:4])
        out.append(
            PairRecord("induction", "en", f"{first}. {tail}", f"{swap}. {tail}", f" {ws[4]}",
                       f" {ws[5]}")
        )  # fmt: skip
    return out
