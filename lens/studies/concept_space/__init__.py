"""concept_space: in which "language" does the model hold the answer on its way through the layers?

Logit lens (``lens.logit_lens``, final norm recomputed per layer) at the last prompt position,
while the organism translates a word (``[src] word [tgt]``) or answers a fact query in a
non-pivot language or code notation. Per layer it reads the probability of

* ``target answer``: the correct word in the target language (what the model must output),
* ``pivot answer``: the same concept's word in the pivot language (English),
* ``source word``: the word being translated (translations only; copying),

and the probability mass of token categories taken from the organism's ground truth
(``lens.organism.token_languages``): every pivot-language token, every target-language
token, and every code token (notation tokens).

The question (arXiv 2506.01074 for code, 2504.04264 for facts; after "do Llamas work in
English?"): do middle layers put more mass on the pivot-language answer than on the
target-language answer before the last layers switch to the target?

On any other model (or with ``Config.data``) the panels are the translation and repetition
tasks of Wendler et al. 2024 (arXiv 2402.10588) built from a word-translations dataset
(default: the built-in ``"translations"``): few-shot prompts ``Français: "fleur" - Deutsch: "``
(:mod:`lens.studies.concept_space.tasks`), English as the pivot, words scored by their first
token, concepts whose target and English words share that token excluded and counted.
"""

from __future__ import annotations

import sys

from lens.studies.base import register_study
from lens.studies.concept_space.config import Config, quick_config
from lens.studies.concept_space.findings import findings
from lens.studies.concept_space.panels import pivot_first
from lens.studies.concept_space.report import Result
from lens.studies.concept_space.run import ANSWERS, CATEGORIES, run
from lens.studies.concept_space.tasks import first_token_after

__all__ = [
    "ANSWERS",
    "CATEGORIES",
    "Config",
    "Result",
    "findings",
    "first_token_after",
    "pivot_first",
    "quick_config",
    "run",
]

register_study("concept_space", sys.modules[__name__])
