"""Refusal is mediated by one direction, and it transfers across languages.

Arditi et al. (2024, arXiv 2406.11717) find a residual-stream direction whose ablation removes
refusal and whose addition induces it; Wang et al. (2025, arXiv 2505.17306) find that the
directions of different languages are nearly parallel, so that one language's direction
removes refusal in the others. This study repeats both on the organism, per language:

1. candidates: ``lens.finders.diff_in_means`` of harmful - harmless **train** requests at every
   layer's ``hook_resid_pre`` and the post-instruction positions (default ``? bot:``, offsets
   -2 and -1);
2. selection: ``lens.finders.select_direction`` on the **val** requests (bypass / induce / KL
   scores; refusal tokens = the first token of the language's refusal phrase, from the world's
   ground truth). Candidates that are exactly zero (a layer whose residual stream at that
   position depends only on the token, e.g. layer 0 at the shared ``bot:`` token) are left out
   before selection and listed as dropped;
3. evaluation on the **held-out** requests: refusal rate before / after ablating the direction
   (``DirectionAblation``: every layer, all positions), refusal induced on harmless requests by
   ``ActivationAddition`` of the raw direction at its own layer (coeff 1, all positions), the
   weight-orthogonalised model (``interventions.orthogonalize``) compared with hook ablation,
   the transfer matrix (direction of language s ablated on harmful requests of language t) and
   the cosine similarity of the selected directions.

A reply counts as a refusal when its greedy continuation (``lens.generate.greedy_tokens``, no
KV cache) starts with the language's whole refusal phrase, token for token. The rate of replies
whose first token is the refusal phrase's first token is reported alongside ("first-token
rate"); it is what the selection scores optimise.

On the organism the requests and refusal phrases come from its world. On any other model (or
with ``Config.data``) they come from a requests dataset (default: the built-in ``"requests"``),
split by id into train / val / held-out, formatted with the model's chat template when it has
one; a reply is a refusal when it starts with one of the language's common refusal openings
(:data:`lens.studies.refusal.requests.REFUSAL_PHRASES`, or ``Config.refusal_phrases``).

Before anything else the study measures the baseline: the refusal rate of every request
without intervention. When the model refuses fewer than ``Config.min_baseline_refusal``
(default 0.5) of the harmful requests in the pivot language, it stops and reports that
baseline: no direction, and one failed precondition instead of findings.

Example:
    >>> import lens
    >>> from lens.studies import refusal
    >>> model = lens.load_model("organism")               # doctest: +SKIP
    >>> result = refusal.run(model, refusal.quick_config())  # doctest: +SKIP
    >>> result.save("results/refusal")                   # doctest: +SKIP
"""

from __future__ import annotations

import sys

from lens.studies.base import register_study
from lens.studies.refusal.config import Config, quick_config
from lens.studies.refusal.findings import findings
from lens.studies.refusal.flags import refusal_flags
from lens.studies.refusal.report import Result
from lens.studies.refusal.run import run

__all__ = ["Config", "Result", "findings", "quick_config", "refusal_flags", "run"]

register_study("refusal", sys.modules[__name__])
