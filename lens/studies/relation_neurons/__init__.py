"""Relation-specific neurons (Liu et al. 2025, arXiv 2502.17355) on the organism or any model.

0. Data: fact queries from ``Config.data`` (a ``lens.data`` facts file or built-in name;
   default: the organism's own facts on the organism, lens's built-in real facts elsewhere).
   Subjects are keyed across languages (parallel ids), relations are the data's relations.
   Answers are scored by ``Config.scoring`` (:mod:`lens.studies.answers`, default
   ``"first_token"``); answers the model cannot tokenize are reported and skipped. A transfer
   language with near-zero baseline accuracy (``min_accuracy``) is flagged and not measured.

1. Selection: the organism's subjects are split (``seed``) into a selection half and an
   evaluation half. On the selection subjects' fact queries in the selection language (the
   pivot by default), :func:`lens.finders.average_precision_neurons` scores every MLP neuron
   (``mlp.hook_post``, mean over the prompt's tokens) by the average precision with which it
   separates one relation's prompts from sampled other relations' prompts, and keeps the top
   ``k`` per relation (default: the paper's 3,000 of 352,256 neurons, scaled to the model).
2. Accuracy: with ``"first_token"`` scoring a query is answered correctly when the argmax of
   the next-token logits at the prompt's last position is the gold answer's first token (the
   organism's answers are one token, so this equals the first token of greedy generation).
   Evaluated on the evaluation subjects' trained (not held-out) queries.
3. Drop matrix: ``drop[i, j]`` = accuracy on relation j without intervention minus accuracy
   with relation i's neurons set to 0 (``NeuronDeactivation``, every position); positive =
   worse. Negative entries are interference (accuracy improves).
4. Cumulativity: the drop on each relation's own queries as its top-k grows (``k_grid``).
5. Versatility: overlap (Jaccard) between the relations' neuron sets.
6. Multilinguality: the pivot-selected neurons deactivated on the same facts asked in the
   other languages and notations.
7. Random baseline: for each relation and seed, neurons drawn uniformly with the same count
   per layer as its set.
"""

from __future__ import annotations

import sys

from lens.studies.base import register_study
from lens.studies.relation_neurons.config import Config, quick_config
from lens.studies.relation_neurons.findings import findings, summary
from lens.studies.relation_neurons.report import Result
from lens.studies.relation_neurons.run import (
    Queries,
    accuracy_table,
    correct,
    drops,
    make_queries,
    run,
)

__all__ = [
    "Config",
    "Queries",
    "Result",
    "accuracy_table",
    "correct",
    "drops",
    "findings",
    "make_queries",
    "quick_config",
    "run",
    "summary",
]

register_study("relation_neurons", sys.modules[__name__])
