"""The circuit discovery study's numbers, as saved in results.json's ``"data"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lens.studies.base import StudyData


@dataclass
class CircuitData(StudyData):
    """Typed top level of the circuit discovery study's numbers.

    Attributes:
        source, task, language: the pairs read (a file or built-in name) and which of them.
        n_records: pairs of that task and language in the data; ``n_pairs``: scored;
            ``skipped``: ``{reason: count}`` of the records not used; ``pairs``: the first
            few scored (clean, corrupt).
        n_layers, n_heads, n_kv, n_edges: the model's graph.
        methods: ``{method: {...}}`` with ``seconds`` (scoring), ``curve_seconds``, ``steps``,
            ``curve`` (``sizes``, ``n_edges`` after pruning, ``faithfulness``, ``cpr``,
            ``cmd``), ``top_edges`` (the 30 highest ``|score|`` edges ``[writer, reader,
            score]``), ``circuit_edges`` (the plotted circuit) and ``top_heads`` (the heads
            with the most outgoing ``|score|``: ``head``, ``layer``, ``out_score``,
            ``to_logits``).
        default_method: the method plotted and named first; ``ablation``: ``"corrupt"`` or
            ``"mean"`` (what edges outside a circuit carry).
    """

    source: str
    task: str
    language: str
    n_records: int
    n_pairs: int
    skipped: dict[str, int]
    pairs: list[list[str]]
    n_layers: int
    n_heads: int
    n_kv: int
    n_edges: int
    methods: dict[str, dict[str, Any]]
    default_method: str = "eap-ig"
    ablation: str = "corrupt"
