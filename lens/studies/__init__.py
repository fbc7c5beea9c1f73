"""Studies: thin compositions of lens primitives into the methods of recent papers.

One package per study (``lens.studies.NAME``) with ``config.py`` (``Config``, a JSON-loadable
dataclass with defaults for the organism, and ``quick_config()``: seconds, for tests),
``run.py`` (``run(model, config) -> Result``), ``findings.py`` (the paper's claims checked
against the numbers), ``report.py`` (``Result``: headline, markdown report; ``Result.save(dir)``
writes results.json, report.md and PNG plots) and ``plots.py``. Each package re-exports these
names and registers itself in ``STUDIES``.

Shared by the studies: ``Config.data`` (every study config; a ``lens.data`` file or built-in
name) resolved by :mod:`lens.studies.datasets` (the organism's own data on the organism, lens's
real data on any other model), answer scoring in :mod:`lens.studies.answers` (``first_token`` /
``teacher_forced``; answers a model cannot tokenize are reported and skipped) and fact queries
in :mod:`lens.studies.facts`.
"""

# Study packages register themselves on import (one line each):
from lens.studies import (
    causal_tracing,  # noqa: F401
    circuit_discovery,  # noqa: F401
    concept_space,  # noqa: F401
    fact_consistency,  # noqa: F401
    language_neurons,  # noqa: F401
    refusal,  # noqa: F401
    relation_neurons,  # noqa: F401
)
from lens.studies.base import STUDIES, Finding, StudyConfig, StudyResult, register_study

__all__ = ["STUDIES", "Finding", "StudyConfig", "StudyResult", "register_study"]
