"""Settings of the causal tracing study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from lens.studies.base import StudyConfig
from lens.studies.config_types import Items, Range


@dataclass
class Config(StudyConfig):
    """What to trace (defaults: the full run on the organism).

    Attributes:
        languages: organism languages (None: all); ignored for models without the organism's
            world, which get :data:`lens.studies.causal_tracing.ENGLISH_FACTS`.
        prompts_per_language: prompts traced per language (the first ones the model answers
            right).
        samples: noise draws per prompt; noise: its std in embedding stds (3 in the paper).
        window: layers restored together for MLP / attention (None: a fifth of the layers).
        batch_size: rows per forward.
    """

    languages: Annotated[list[str] | None, Items(1, unique=True)] = None
    prompts_per_language: Annotated[int, Range(1)] = 8
    samples: Annotated[int, Range(1)] = 5
    noise: Annotated[float, Range(0, open_low=True)] = 3.0
    window: Annotated[int | None, Range(1)] = None
    batch_size: Annotated[int, Range(1)] = 128


def quick_config() -> Config:
    """A reduced run for tests and the demo: two languages, two prompts, two noise draws."""
    return Config(languages=["en", "ka"], prompts_per_language=2, samples=2)
