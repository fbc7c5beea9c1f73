"""Dataset files for the studies: one versioned JSONL format per kind of data, a validating
loader with precise errors, and built-in datasets (see README.md in this folder).

Example:
    >>> from lens import data
    >>> facts = data.load_builtin("facts")
    >>> [r.prompt for r in facts.by_language("fr")][:1]
    ['La capitale de la France est']
"""

from lens.data.builtin import builtin_names, load_builtin, load_dataset
from lens.data.jsonl import DataFormatError, Dataset, dumps, load, parse_lines, save
from lens.data.records import (
    FORMATS,
    FactRecord,
    FormatSpec,
    PairRecord,
    RequestRecord,
    TextRecord,
    TranslationRecord,
)

__all__ = [
    "FORMATS",
    "DataFormatError",
    "Dataset",
    "FactRecord",
    "FormatSpec",
    "PairRecord",
    "RequestRecord",
    "TextRecord",
    "TranslationRecord",
    "builtin_names",
    "dumps",
    "load",
    "load_builtin",
    "load_dataset",
    "parse_lines",
    "save",
]
