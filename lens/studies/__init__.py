"""Study modules: thin compositions of lens primitives into the methods of recent papers.

Each module has ``Config`` (JSON-loadable dataclass with defaults for the organism),
``quick_config()`` (seconds, for tests), ``run(model, config) -> Result`` and
``Result.save(dir)`` (results.json, report.md, PNG plots).
"""

# Study modules register themselves on import (one line each):
from lens.studies import (
    causal_tracing,  # noqa: F401
    concept_space,  # noqa: F401
    fact_consistency,  # noqa: F401
    language_neurons,  # noqa: F401
    refusal,  # noqa: F401
    relation_neurons,  # noqa: F401
)
from lens.studies.base import STUDIES, Finding, StudyConfig, StudyResult, register_study

__all__ = ["STUDIES", "Finding", "StudyConfig", "StudyResult", "register_study"]
