"""Settings of the concept_space study."""

from __future__ import annotations

from dataclasses import dataclass, field

from lens.studies.base import StudyConfig


@dataclass
class Config(StudyConfig):
    """What to decode.

    Attributes:
        sources: source languages/notations of the translations (None: every non-pivot one).
        targets: target languages/notations (None: every non-pivot one). The pivot is left
            out by default: with the pivot as source or target, "pivot answer" would be the
            source word or the answer itself.
        kinds: lexicon kinds translated (``lens.organism.translation_pairs``).
        max_items: items per translation pair (None: all; else sampled with ``seed``).
        fact_scripts: languages/notations whose fact queries are decoded (None: every
            non-pivot one; [] for none). Queries whose answer is the pivot word itself
            (shared city and person names) are left out.
        fact_heldout: None = every fact; False = facts trained in that language; True = held out.
        max_facts: fact queries per language (None: all; else sampled with ``seed``).
        min_mass: the pivot answer must reach this probability in a middle layer for the
            "pivot first" pattern to count (guards against comparing two near-zero numbers).
        batch_size: prompts per forward.
        organism_folder: a trained organism folder (None: the shipped organism).
    """

    sources: list[str] | None = None
    targets: list[str] | None = None
    kinds: list[str] = field(default_factory=lambda: ["concept"])
    max_items: int | None = None
    fact_scripts: list[str] | None = None
    fact_heldout: bool | None = False
    max_facts: int | None = None
    min_mass: float = 0.05
    batch_size: int = 256
    organism_folder: str | None = None


def quick_config() -> Config:
    """Two sources, two targets, a few items each (seconds)."""
    return Config(
        sources=["ka", "py"],
        targets=["mu", "lisp"],
        max_items=12,
        fact_scripts=["ro", "py"],
        max_facts=16,
    )
