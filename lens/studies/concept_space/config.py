"""Settings of the concept_space study."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from lens.studies.base import StudyConfig
from lens.studies.config_types import Items, Range

Task = Literal["translation", "repetition"]


@dataclass
class Config(StudyConfig):
    """What to decode.

    On the organism (with ``data`` None) the panels come from its world: its own translation
    prompts ``[src] word [tgt]`` and fact queries. On any other model (or with ``data``) they
    are the few-shot translation and repetition tasks of Wendler et al. 2024 built from a word
    translations dataset (:mod:`lens.studies.concept_space.tasks`).

    Attributes:
        data: a translations dataset (file or built-in name; None: the organism's world on the
            organism, the built-in ``"translations"`` on any other model).
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
        pivot: the pivot language of a dataset (the organism's is its world's).
        tasks: the dataset tasks to run: translation (source != target) and repetition.
        n_shots: solved examples before the open line of a dataset prompt.
        code_languages: languages of a dataset that count as code: their word of the concept
            is read as the ``code answer`` curve when every item has one.
    """

    data_kind: ClassVar[str | None] = "translations"
    sources: Annotated[list[str] | None, Items(1, unique=True)] = None
    targets: Annotated[list[str] | None, Items(1, unique=True)] = None
    kinds: Annotated[list[str], Items(1, unique=True)] = field(default_factory=lambda: ["concept"])
    max_items: Annotated[int | None, Range(1)] = None
    fact_scripts: Annotated[list[str] | None, Items(0, unique=True)] = None
    fact_heldout: bool | None = False
    max_facts: Annotated[int | None, Range(1)] = None
    min_mass: Annotated[float, Range(0, 1)] = 0.05
    batch_size: Annotated[int, Range(1, 65536)] = 256
    organism_folder: str | None = None
    pivot: str = "en"
    tasks: Annotated[list[Task], Items(1, unique=True)] = field(
        default_factory=lambda: ["translation", "repetition"]
    )
    n_shots: Annotated[int, Range(0, 64)] = 4
    code_languages: Annotated[list[str], Items(0, unique=True)] = field(
        default_factory=lambda: ["python", "javascript"]
    )


def quick_config() -> Config:
    """Two sources, two targets, a few items each (seconds)."""
    return Config(
        sources=["ka", "py"],
        targets=["mu", "lisp"],
        max_items=12,
        fact_scripts=["ro", "py"],
        max_facts=16,
    )
