"""Settings of the causal tracing study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

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
        noise_from: whose token-embedding std ``noise`` multiplies: ``"subjects"`` (ROME's
            recipe: the subject strings of every fact of the language, each tokenized alone)
            or ``"prompts"`` (the traced prompts' own tokens).
        window: layers restored together for MLP / attention (None: a fifth of the layers),
            centred on each layer and clipped at the first and last layer as in ROME.
        batch_size: rows per forward.
    """

    languages: Annotated[list[str] | None, Items(1, unique=True)] = None
    prompts_per_language: Annotated[int, Range(1, 100_000)] = 8
    samples: Annotated[int, Range(1, 1000)] = 5
    noise: Annotated[float, Range(0, open_low=True)] = 3.0
    noise_from: Literal["subjects", "prompts"] = "subjects"
    window: Annotated[int | None, Range(1)] = None
    batch_size: Annotated[int, Range(1, 65536)] = 128


def quick_config() -> Config:
    """A reduced run for tests and the demo: two languages, two prompts, two noise draws."""
    return Config(languages=["en", "ka"], prompts_per_language=2, samples=2)
