"""Causal tracing of factual recall (Meng et al. 2022; the fact-tracing question of
arXiv 2505.14824): where do restored clean states bring the answer back after the subject's
embeddings were noised?

Per language on the organism (its facts have known subjects); on models without the
organism's world (e.g. SmolLM2), English prompts written for lens. For each prompt the model
answers right (one-token answer, its top-1 next token): the subject's embeddings get Gaussian
noise (``noise`` embedding stds, fixed seed, ``samples`` draws), then one hidden state per
layer x position is restored from the clean run (residual stream; windows of MLP and
attention outputs) with :func:`lens.patching.causal_trace`. The indirect effect (answer
probability restored minus noised) is averaged per layer and token role.

The paper's two sites: an early one (MLP outputs at the last subject token, middle layers) and
a late one (hidden states at the last token, late layers). The study reports, per language,
whether the early site shows up, with the numbers.

Example:
    >>> import lens
    >>> from lens.studies import causal_tracing
    >>> model = lens.load_model("organism")                            # doctest: +SKIP
    >>> result = causal_tracing.run(model, causal_tracing.quick_config())  # doctest: +SKIP
    >>> result.save("results/causal_tracing")                          # doctest: +SKIP
"""

from __future__ import annotations

import sys

from lens.studies.base import register_study
from lens.studies.causal_tracing.config import Config, quick_config
from lens.studies.causal_tracing.data import CausalTracingData
from lens.studies.causal_tracing.findings import findings
from lens.studies.causal_tracing.report import Result
from lens.studies.causal_tracing.run import ENGLISH_FACTS, facts_by_language, known_facts, run

__all__ = [
    "ENGLISH_FACTS",
    "CausalTracingData",
    "Config",
    "Result",
    "facts_by_language",
    "findings",
    "known_facts",
    "quick_config",
    "run",
]

register_study("causal_tracing", sys.modules[__name__])
