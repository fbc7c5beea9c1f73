"""Reading and writing lens dataset files (JSONL with a header line), with precise errors.

File layout: line 1 is a header ``{"format": "lens-facts", "version": 1}`` naming the kind of
records; every following non-blank line is one JSON object with exactly the record's fields
(see :mod:`lens.data.records`). Any malformed line raises :class:`DataFormatError` naming the
file, the 1-based line number and the field.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from lens.data.records import (
    BY_NAME,
    FORMATS,
    LABELS,
    FactRecord,
    FormatSpec,
    Record,
    spec_of,
)


class DataFormatError(ValueError):
    """A dataset file is malformed; ``path``, ``line`` and ``field`` say where."""

    def __init__(self, path: str, line: int, message: str, field: str | None = None):
        self.path, self.line, self.field = path, line, field
        where = f"{path}:{line}" + (f": field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")


@dataclass
class Dataset:
    """Records of one kind, loaded from ``path`` (None when built in memory).

    Example:
        >>> from lens.data import TextRecord
        >>> ds = Dataset("texts", [TextRecord("en", "Hello."), TextRecord("python", "x = 1")])
        >>> ds.languages(), len(ds)
        (['en', 'python'], 2)
    """

    kind: str
    records: list[Any]
    path: str | None = None
    spec: FormatSpec = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FORMATS:
            raise ValueError(f"unknown dataset kind {self.kind!r}; known: {sorted(FORMATS)}")
        self.spec = FORMATS[self.kind]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def languages(self) -> list[str]:
        """Languages present, in first-seen order."""
        return list(dict.fromkeys(r.language for r in self.records))

    def by_language(self, language: str) -> list[Any]:
        """Records of one language (empty list when absent)."""
        return [r for r in self.records if r.language == language]

    def counts(self) -> dict[str, Counter]:
        """Counts per language, and per relation (facts) or label (requests)."""
        out = {"language": Counter(r.language for r in self.records)}
        if self.kind == "facts":
            out["relation"] = Counter(r.relation for r in self.records)
        if self.kind == "pairs":
            out["task"] = Counter(r.task for r in self.records)
        if self.kind == "requests":
            out["label"] = Counter(r.label for r in self.records)
        if self.kind in ("facts", "requests"):
            out["id"] = Counter({"distinct": len({r.id for r in self.records})})
        if self.kind == "translations":
            out["concept"] = Counter({"distinct": len({r.concept for r in self.records})})
        return out


def _record(spec: FormatSpec, obj: Any, path: str, line: int) -> Record:
    if not isinstance(obj, dict):
        raise DataFormatError(path, line, f"expected a JSON object, got {type(obj).__name__}")
    names = spec.field_names
    for name in names:
        if name not in obj:
            raise DataFormatError(path, line, f"missing (a {spec.name} record needs {names})", name)
        value = obj[name]
        if not isinstance(value, str):
            raise DataFormatError(
                path, line, f"expected a string, got {type(value).__name__} {value!r}", name
            )
        if not value.strip():
            raise DataFormatError(path, line, "empty text", name)
    for name in obj:
        if name not in names:
            raise DataFormatError(
                path, line, f"unknown field (a {spec.name} record has {names})", name
            )
    if spec.kind == "requests" and obj["label"] not in LABELS:
        raise DataFormatError(path, line, f"unknown label {obj['label']!r}; use {LABELS}", "label")
    problem = spec.check(obj) if spec.check is not None else None
    if problem is not None:
        raise DataFormatError(path, line, problem[1], problem[0])
    return spec.record(**{n: obj[n] for n in names})


def _header(obj: Any, path: str) -> FormatSpec:
    if not isinstance(obj, dict) or "format" not in obj:
        raise DataFormatError(
            path,
            1,
            'the first line must be a header like {"format": "lens-facts", "version": 1}',
            "format",
        )
    name, version = obj.get("format"), obj.get("version")
    if name not in BY_NAME:
        raise DataFormatError(
            path, 1, f"unknown format {name!r}; known: {sorted(BY_NAME)}", "format"
        )
    spec = BY_NAME[name]
    if not isinstance(version, int) or isinstance(version, bool) or version != spec.version:
        raise DataFormatError(
            path,
            1,
            f"unsupported version {version!r} of {name} (this lens reads {spec.version})",
            "version",
        )
    extra = set(obj) - {"format", "version", "description"}
    if extra:
        raise DataFormatError(path, 1, "unknown header field", sorted(extra)[0])
    return spec


def parse_lines(lines: Iterable[str], path: str = "<memory>") -> Dataset:
    """Parse JSONL text lines (header first) into a validated :class:`Dataset`.

    Example:
        >>> ds = parse_lines(['{"format": "lens-texts", "version": 1}',
        ...                   '{"language": "en", "text": "Hi."}'])
        >>> ds.kind, ds.records[0].text
        ('texts', 'Hi.')
    """
    spec: FormatSpec | None = None
    records: list[Any] = []
    seen: dict[tuple, int] = {}
    relation_of: dict[str, tuple[str, int]] = {}
    last = 0
    for number, raw in enumerate(lines, start=1):
        last = number
        line = raw.rstrip("\r\n").lstrip("\ufeff") if number == 1 else raw.rstrip("\r\n")
        if not line.strip():
            continue
        obj = _json(line, path, number)
        if spec is None:
            if number != 1:
                raise DataFormatError(path, number, "the header must be on line 1", "format")
            spec = _header(obj, path)
            continue
        if isinstance(obj, dict) and "format" in obj and "version" in obj:
            raise DataFormatError(
                path,
                number,
                f"a second header ({obj['format']!r} version {obj['version']!r}; line 1 says "
                f"{spec.name!r} version {spec.version}): one file holds one format and version, "
                "were two files joined?",
                "format",
            )
        rec = _record(spec, obj, path, number)
        if spec.key:
            key = tuple(getattr(rec, k) for k in spec.key)
            if key in seen:
                raise DataFormatError(
                    path,
                    number,
                    f"duplicate {spec.key} = {key} (first on line {seen[key]})",
                    spec.key[0],
                )
            seen[key] = number
        if isinstance(rec, FactRecord):
            first = relation_of.setdefault(rec.id, (rec.relation, number))
            if first[0] != rec.relation:
                raise DataFormatError(
                    path,
                    number,
                    f"parallel fact {rec.id!r} has relation {first[0]!r} on line "
                    f"{first[1]} but {rec.relation!r} here",
                    "relation",
                )
        records.append(rec)
    if spec is None:
        raise DataFormatError(path, 1, "empty file: no header line", "format")
    if not records:
        raise DataFormatError(
            path, last + 1, f"no records after the {spec.name} header: is the file truncated?"
        )
    return Dataset(spec.kind, records, path)


def _json(line: str, path: str, number: int) -> Any:
    """One line's JSON value; errors give the column within the line and say when the line
    stops in the middle of a value (a truncated file) or holds binary data."""
    nul = line.find("\x00")
    if nul >= 0:
        raise DataFormatError(
            path, number, f"binary data (a NUL byte at column {nul + 1}): not a JSONL text file"
        )
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        column = exc.pos + 1
        cut = (
            ": the line ends in the middle of a value (is the file truncated?)"
            if exc.pos >= len(line.rstrip())
            else ""
        )
        raise DataFormatError(
            path, number, f"bad JSON ({exc.msg} at column {column}){cut}"
        ) from None
    except RecursionError:
        raise DataFormatError(path, number, "bad JSON (nested too deeply)") from None


def _text_lines(handle: IO[bytes], path: str) -> Iterator[str]:
    """The lines of a binary file handle as text; a line that is not UTF-8 is an error naming
    the line and the byte (a binary file, or another encoding)."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataFormatError(
                path,
                number,
                f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}): a "
                "binary file, or text in another encoding? Dataset files are UTF-8 JSONL",
            ) from None


def load(path: str | Path) -> Dataset:
    """Load and validate a dataset file.

    Raises:
        DataFormatError: on any malformed line (file, line and field in the message): bad
            JSON (with its column), a line that is not UTF-8 text (a binary file), a missing
            or wrong header, a second header (files of two versions joined), no records.
        FileNotFoundError: when ``path`` does not exist.
    """
    path = Path(path)
    with path.open("rb") as handle:
        return parse_lines(_text_lines(handle, str(path)), str(path))


def dumps(records: Sequence[Record], kind: str | None = None) -> str:
    """JSONL text (header + one line per record) for records of one kind."""
    if kind is None:
        if not records:
            raise ValueError("cannot infer the kind of an empty record list: pass kind=")
        kind = spec_of(records[0]).kind
    spec = FORMATS[kind]
    lines = [json.dumps({"format": spec.name, "version": spec.version})]
    for rec in records:
        if not isinstance(rec, spec.record):
            raise TypeError(f"a {kind} file holds {spec.record.__name__}, got {type(rec).__name__}")
        lines.append(json.dumps(asdict(rec), ensure_ascii=False))
    text = "\n".join(lines) + "\n"
    parse_lines(text.splitlines(), f"<{kind} being written>")  # never write an unreadable file
    return text


def save(path: str | Path, records: Sequence[Record] | Dataset, kind: str | None = None) -> Path:
    """Write records (or a Dataset) as a validated dataset file; returns the path.

    Example:
        >>> import tempfile, os
        >>> from lens.data import TranslationRecord
        >>> p = os.path.join(tempfile.mkdtemp(), "words.jsonl")
        >>> words = [TranslationRecord("dog", "en", "dog"), TranslationRecord("dog", "fr", "chien")]
        >>> _ = save(p, words)
        >>> [r.word for r in load(p)]
        ['dog', 'chien']
    """
    if isinstance(records, Dataset):
        kind, records = records.kind, records.records
    path = Path(path)
    path.write_text(dumps(records, kind), encoding="utf-8")
    return path
