"""Built-in datasets by name: lens's hand-written real-world data and the organism's world."""

from __future__ import annotations

from pathlib import Path

from lens.data.jsonl import Dataset, load
from lens.data.records import FORMATS

FILES = Path(__file__).resolve().parent / "files"
ORGANISM_PREFIX = "organism-"


def builtin_names() -> list[str]:
    """Names accepted by :func:`load_builtin`.

    Example:
        >>> builtin_names()[:4]
        ['facts', 'pairs', 'requests', 'texts']
    """
    shipped = sorted(p.stem for p in FILES.glob("*.jsonl"))
    return shipped + [ORGANISM_PREFIX + kind for kind in FORMATS]


def load_builtin(name: str) -> Dataset:
    """A built-in dataset: ``"facts"``, ``"translations"``, ``"requests"``, ``"texts"`` (real
    world, hand-written; see lens/data/README.md) or ``"organism-<kind>"`` (the organism's
    synthetic world in the same format).

    Example:
        >>> ds = load_builtin("facts")
        >>> sorted(ds.counts()["relation"])
        ['capital', 'continent', 'currency', 'language']
    """
    if name.startswith(ORGANISM_PREFIX) and name[len(ORGANISM_PREFIX) :] in FORMATS:
        from lens.data.organism_export import EXPORTERS  # noqa: PLC0415

        return EXPORTERS[name[len(ORGANISM_PREFIX) :]]()
    path = FILES / f"{name}.jsonl"
    if not path.is_file():
        raise ValueError(f"no built-in dataset {name!r}; known: {builtin_names()}")
    return load(path)


def load_dataset(source: str | Path) -> Dataset:
    """A dataset from a file path or a built-in name (a path that exists wins).

    Example:
        >>> len(load_dataset("translations")) > 0
        True
    """
    path = Path(source)
    if path.suffix == ".jsonl" or path.exists():
        return load(path)
    return load_builtin(str(source))
