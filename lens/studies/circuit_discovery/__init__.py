"""Circuit discovery on edges (Hanna et al. 2024, arXiv 2403.17806; MIB, arXiv 2504.13151):
which edges of the residual graph carry a task's behaviour?

Reads ``lens-pairs`` data (clean/corrupt prompts with the clean ``answer`` and the corrupt
``wrong``): lens's built-in IOI-style and induction pairs on any model, the organism's relation
facts on the organism, or the user's file. Each method (EAP, EAP-IG, exact edge patching)
scores every edge; the top edges of each ranking are patched back in at ~20 sizes to give a
faithfulness curve (CPR, CMD); the default method's top circuit is plotted.

Example:
    >>> import lens
    >>> from lens.studies import circuit_discovery as cd
    >>> res = cd.run(lens.load_model("organism"), cd.quick_config())   # doctest: +SKIP
    >>> res.save("results/circuit_discovery")                           # doctest: +SKIP
"""

from __future__ import annotations

import sys

from lens.studies.base import register_study
from lens.studies.circuit_discovery.config import Config, quick_config
from lens.studies.circuit_discovery.data import CircuitData
from lens.studies.circuit_discovery.findings import findings
from lens.studies.circuit_discovery.report import Result
from lens.studies.circuit_discovery.run import run, select_records, usable_pairs

__all__ = [
    "CircuitData",
    "Config",
    "Result",
    "findings",
    "quick_config",
    "run",
    "select_records",
    "usable_pairs",
]

register_study("circuit_discovery", sys.modules[__name__])
