"""Which data a study reads: the user's file or built-in name (``Config.data``), else the
organism's own data on the organism and lens's built-in real data on any other model.

Every study that reads a dataset goes through :func:`study_dataset`, so "is this the organism,
and where is its world?" is decided in one place
(:func:`lens.studies._organism_data.organism_world`: the model's tokenizer holds the world's
words; :func:`is_organism` only asks it) and a file of the wrong kind fails with one clear
message before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lens.data.jsonl import Dataset
from lens.data.records import FORMATS


def is_organism(model: Any, folder: str | Path | None = None) -> bool:
    """Whether ``model`` is an organism (its tokenizer holds the organism world's words).

    Example:
        >>> import lens
        >>> is_organism(lens.load_model(lens.tiny_config("llama")))
        False
    """
    from lens.studies._organism_data import organism_world

    return organism_world(model, folder, required=False) is not None


def load_source(source: str | Path, kind: str | None = None) -> Dataset:
    """A dataset from a JSONL file or a built-in name, checked to hold ``kind`` records.

    Raises:
        ValueError: unknown name, malformed file (``lens.data.DataFormatError``: file, line,
            field) or a file of another kind.
        FileNotFoundError: a ``.jsonl`` path that does not exist.

    Example:
        >>> load_source("facts", "facts").kind
        'facts'
        >>> load_source("texts", "facts")
        Traceback (most recent call last):
        ...
        ValueError: dataset 'texts' holds texts records; this study needs facts (a 'lens-facts' file, see lens/data/README.md)
    """  # noqa: E501
    from lens.data.builtin import load_dataset

    if kind is not None and kind not in FORMATS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {sorted(FORMATS)}")
    path = Path(source)
    if path.suffix == ".jsonl" and not path.is_file():
        raise FileNotFoundError(f"dataset file {source} does not exist")
    dataset = load_dataset(source)
    if kind is not None and dataset.kind != kind:
        raise ValueError(
            f"dataset {str(source)!r} holds {dataset.kind} records; this study needs {kind} "
            f"(a {FORMATS[kind].name!r} file, see lens/data/README.md)"
        )
    return dataset


def default_source(model: Any, kind: str, folder: str | Path | None = None) -> str:
    """The built-in dataset a study reads when ``Config.data`` is None: ``"organism-<kind>"``
    on the organism, ``"<kind>"`` (lens's real data) on any other model.

    Example:
        >>> import lens
        >>> default_source(lens.load_model(lens.tiny_config("llama")), "facts")
        'facts'
    """
    return f"organism-{kind}" if is_organism(model, folder) else kind


def study_dataset(
    model: Any, config: Any, folder: str | Path | None = None
) -> tuple[Dataset, str, Any]:
    """The dataset ``config`` asks for (``config.data``), else the model's default.

    Args:
        model: the model the study runs on.
        config: a study config with ``data`` and the class attribute ``data_kind``.
        folder: a trained organism folder or its world.json (None: the model's own folder or
            the shipped organism). A folder given explicitly must fit the model (ValueError).

    Returns:
        (dataset, source, world): ``source`` is the file or built-in name used (for reports);
        ``world`` is the organism's world when the organism's own data is used (its held-out
        pairs and ground truth), else None.

    Example:
        >>> import lens
        >>> from lens.studies.fact_consistency import Config
        >>> ds, source, world = study_dataset(lens.load_model(lens.tiny_config("llama")), Config())
        >>> source, ds.kind, world is None
        ('facts', 'facts', True)
    """
    from lens.data.organism_export import EXPORTERS
    from lens.studies._organism_data import organism_world

    kind = config.data_kind
    if kind is None:
        raise ValueError(f"{type(config).__qualname__} declares no data_kind")
    world = organism_world(model, folder, required=folder is not None)
    if config.data is not None and (world is None or config.data != f"organism-{kind}"):
        return load_source(config.data, kind), str(config.data), None
    if world is None:
        return load_source(kind, kind), kind, None
    return EXPORTERS[kind](world), f"organism-{kind}", world
