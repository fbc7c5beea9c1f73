"""Language-specific neurons (LAPE, Tang et al. 2024, arXiv 2402.16438) and their effect.

1. Activation probabilities of every MLP neuron per language (``lens.collect`` over
   ``mlp.hook_pre``: for the gated MLPs of Llama models the gate pre-activation, so "active"
   means SiLU(gate) > 0) on a part of each language's texts.
2. :func:`lens.finders.lape` keeps the lowest-entropy ``top_rate`` of all neurons and assigns
   each to the languages where its activation probability is high; per-layer distribution and
   exclusive neurons (assigned to one language only) follow.
3. Deactivation matrix: ``increase[i, j]`` = mean next-token cross-entropy on held-out texts
   of language j with language i's neurons set to 0 (``NeuronDeactivation``, every position,
   ``mlp.hook_post``) minus the same without intervention. Texts held out from step 1.
4. Random baseline: for every language i and seed, neurons drawn uniformly in each layer with
   the same per-layer counts as language i's set; the matrix is averaged over seeds.

On the organism the "languages" are its five languages and two code notations (texts from
:func:`lens.organism.corpus`); on other models, a texts dataset (``--data``; default the
built-in ``"texts"``: English, French, German, Spanish, Italian, Python, JavaScript).
"""

from __future__ import annotations

import sys

from lens.studies.base import register_study
from lens.studies.language_neurons.config import Config, quick_config
from lens.studies.language_neurons.findings import findings
from lens.studies.language_neurons.report import Result
from lens.studies.language_neurons.run import (
    deactivation_matrix,
    diagonal_stats,
    edge_layers,
    group_losses,
    run,
    texts_by_language,
)
from lens.studies.neuron_sets import random_like

__all__ = [
    "Config",
    "Result",
    "deactivation_matrix",
    "diagonal_stats",
    "edge_layers",
    "findings",
    "group_losses",
    "quick_config",
    "random_like",
    "run",
    "texts_by_language",
]

register_study("language_neurons", sys.modules[__name__])
