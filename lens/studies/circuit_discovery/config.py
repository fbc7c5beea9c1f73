"""Settings of the circuit discovery study."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from lens.studies.base import StudyConfig
from lens.studies.config_types import Items, Range

MethodName = Literal["eap", "eap-ig", "exact"]


@dataclass
class Config(StudyConfig):
    """What to score (defaults: the full run; ``lens.data`` ``lens-pairs`` data).

    Attributes:
        task: the pairs' task to study (None: the first task in the data: ``ioi`` for the
            built-in pairs, the first relation on the organism).
        language: only pairs of this language (None: the first language of the task).
        n_pairs: pairs scored (the first usable ones: equal token length, one-token answers,
            and, with ``only_correct``, clean runs that prefer the answer to the wrong token).
        answer_tokens: an answer or wrong word of several tokens is scored by its first token
            (``"first"``; pairs whose two first tokens are the same are skipped) or skipped
            (``"one"``).
        only_correct: drop pairs whose clean run does not prefer ``answer`` to ``wrong``.
        methods: edge scorers compared (``"exact"`` patches every edge alone: small graphs).
        default_method: the method whose circuit is plotted and named in the headline.
        steps: integrated-gradient steps of EAP-IG.
        ig: EAP-IG's path: ``"inputs"`` (interpolate the input embeddings) or
            ``"activations"`` (interpolate every writer's output).
        ablation: what edges outside a circuit carry in faithfulness: the corrupted run's
            values (``"corrupt"``) or the mean of the corrupted runs' values (``"mean"``).
        n_sizes: circuit sizes on the faithfulness curve (log spaced, 1 edge to all).
        plot_edges: edges of the plotted circuit (the top ones, pruned to input -> logits).
        batch_size: pairs per forward.
    """

    data_kind: ClassVar[str | None] = "pairs"
    task: str | None = None
    language: str | None = None
    n_pairs: Annotated[int, Range(1)] = 32
    answer_tokens: Literal["one", "first"] = "first"
    only_correct: bool = True
    methods: Annotated[list[MethodName], Items(1, unique=True)] = field(
        default_factory=lambda: ["eap", "eap-ig"]
    )
    default_method: MethodName = "eap-ig"
    steps: Annotated[int, Range(1)] = 5
    ig: Literal["inputs", "activations"] = "inputs"
    ablation: Literal["corrupt", "mean"] = "corrupt"
    n_sizes: Annotated[int, Range(2)] = 20
    plot_edges: Annotated[int, Range(1)] = 40
    batch_size: Annotated[int, Range(1)] = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.default_method not in self.methods:
            from lens.studies.config_types import StudyConfigError

            raise StudyConfigError(
                f"circuit_discovery config: default_method {self.default_method!r} is not in "
                f"methods {self.methods}"
            )


def quick_config() -> Config:
    """A reduced run for tests and the demo: 4 pairs, 2 IG steps, 8 curve sizes."""
    return Config(n_pairs=4, steps=2, n_sizes=8, plot_edges=20)
