"""Settings of the refusal study."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from lens.studies.base import StudyConfig
from lens.studies.config_types import Items, Layer, Range, StudyConfigError


@dataclass
class Config(StudyConfig):
    """Settings of the refusal study (defaults: the full run on the organism).

    Attributes:
        data: a requests dataset (file or built-in name; None: the organism's world on the
            organism, the built-in ``"requests"`` on any other model).
        min_baseline_refusal: the study goes on only when the model refuses at least this
            share of all harmful requests in the pivot language without intervention;
            otherwise it reports the baseline and stops (no direction, no findings).
        refusal_phrases: ``{lang: [opening of a refusal]}`` for a dataset, replacing the
            built-in lists (``lens.studies.refusal.requests.REFUSAL_PHRASES``) per language.
        chat_template: format dataset requests with the model's chat template when it has one.
        train_fraction, val_fraction: a dataset's request ids per class go to train / val by
            these shares (the rest is held out), shuffled with ``seed``.
        example_tokens, n_examples: greedy reply length and count per language and class
            shown in the baseline.
        languages: languages to study (None = every language of the world / the data).
        pivot: the pivot language (None = the world's pivot; ``"en"`` for a dataset).
        positions: post-instruction offsets from each prompt's end for the candidates.
        layers: candidate layers (``"all"`` or a list).
        kl_threshold, max_layer_frac, induce_filter: selection filters (see select_direction).
        n_train, n_val, n_heldout: cap on requests per class (harmful / harmless) and language
            (None = the whole split).
        addition_coeff: scale of the activation addition.
        batch_size: prompts per forward.
        min_drop: a finding on ablation reproduces when harmful refusal falls by at least this
            much (absolute).
        max_harmless_rise: ... and when harmless refusal rises by at most this much under the
            same ablation (the direction removes refusal, not answers).
        min_cosine: the similarity finding reproduces when the mean off-diagonal cosine is at
            least this.
        min_induced: the addition finding reproduces when the mean induced refusal rate on
            harmless requests is at least this.
        max_logit_diff: the orthogonalisation finding reproduces when every generation agrees
            and logits differ by at most this.
        world: folder or world.json of the organism's world (None = the model's folder when it
            has a world.json, else the shipped world).
    """

    data_kind: ClassVar[str | None] = "requests"
    languages: Annotated[list[str] | None, Items(1, unique=True)] = None
    pivot: str | None = None
    positions: Annotated[list[int], Range(high=-1), Items(1, unique=True)] = field(
        default_factory=lambda: [-2, -1]
    )
    layers: Annotated[Literal["all"] | list[int], Layer(), Items(1, unique=True)] = "all"
    kl_threshold: Annotated[float, Range(0)] = 0.1
    max_layer_frac: Annotated[float, Range(0, 1, open_low=True)] = 0.8
    induce_filter: bool = True
    n_train: Annotated[int | None, Range(1)] = None
    n_val: Annotated[int | None, Range(1)] = None
    n_heldout: Annotated[int | None, Range(1)] = None
    addition_coeff: Annotated[float, Range()] = 1.0
    batch_size: Annotated[int, Range(1, 65536)] = 64
    min_drop: Annotated[float, Range(0, 1)] = 0.8
    max_harmless_rise: Annotated[float, Range(0, 1)] = 0.1
    min_cosine: Annotated[float, Range(-1, 1)] = 0.5
    min_induced: Annotated[float, Range(0, 1)] = 0.5
    max_logit_diff: Annotated[float, Range(0)] = 1e-3
    world: str | None = None
    min_baseline_refusal: Annotated[float, Range(0, 1)] = 0.5
    refusal_phrases: dict[str, list[str]] | None = None
    chat_template: bool = True
    train_fraction: Annotated[float, Range(0, 1, open_low=True, open_high=True)] = 0.5
    val_fraction: Annotated[float, Range(0, 1, open_low=True, open_high=True)] = 0.25
    example_tokens: Annotated[int, Range(1, 4096)] = 12
    n_examples: Annotated[int, Range(0, 1000)] = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.train_fraction + self.val_fraction >= 1:
            raise StudyConfigError(
                "refusal config: config keys 'train_fraction' + 'val_fraction' must be below 1 "
                f"(the rest is held out), got {self.train_fraction} + {self.val_fraction}"
            )


def quick_config() -> Config:
    """A reduced run for tests (a few seconds): two languages, the last position, few prompts."""
    return Config(languages=["en", "ka"], positions=[-1], n_train=24, n_heldout=12, progress=False)
