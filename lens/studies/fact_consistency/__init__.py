"""fact_consistency: factual recall per language, cross-lingual consistency, over training, and
with a linear shortcut over the last layers (arXiv 2504.04264, 2505.14824).

* **Recall** of a fact in language ``L``: the model's greedy answer to the fact query in ``L``
  is the gold object word. Every organism answer is one token, so the greedy continuation's
  first token decides it, and that token is the argmax of the logits at the query's last
  position: the study scores that argmax (one forward per batch; identical to the first
  token of ``lens.generate``, which the integration test checks).
* **Cross-lingual consistency** with the pivot: ``CLC(L) = |C_L ∩ C_pivot| / |C_L ∪ C_pivot|``
  where ``C_L`` is the set of facts answered correctly in ``L``.
* **Data**: facts come from ``Config.data`` (a ``lens.data`` facts file or built-in name;
  default: the organism's own facts on the organism, lens's built-in real facts elsewhere).
  Answers are scored by ``Config.scoring`` (:mod:`lens.studies.answers`; default
  ``"first_token"``); answers the model cannot tokenize are reported and skipped. A language
  whose baseline recall is below ``min_recall`` is flagged and gets no CLC.
* **Training dynamics**: the same on every saved checkpoint of the organism (other models: not
  measured, said so in the report)
  (``lens.load_model("organism", checkpoint=step)``) and the final model.
* **Linear shortcut**: for each layer ``l`` an affine map from ``blocks.l.hook_resid_post`` to
  the last layer's residual (``interventions.LinearShortcut``, fitted on the queries of one
  half of the facts, in every language) replaces layers ``l+1..``; recall and CLC on the other
  half with the shortcut vs the full model.
"""

from __future__ import annotations

import sys

from lens.studies.base import register_study
from lens.studies.fact_consistency.config import Config, quick_config
from lens.studies.fact_consistency.findings import findings
from lens.studies.fact_consistency.measure import clc
from lens.studies.fact_consistency.report import Result
from lens.studies.fact_consistency.run import run

__all__ = ["Config", "Result", "clc", "findings", "quick_config", "run"]

register_study("fact_consistency", sys.modules[__name__])
