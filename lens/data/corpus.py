"""A real-text corpus that needs no download: the running Python's standard library (English
docstrings, comment blocks and source code) plus lens's built-in texts. Streamed (one file is
read at a time), deduplicated (by a hash of the whitespace-normalised text) and split into
train / held-out by a stable hash of the text, so a document lands in the same split on every
machine and every run. See README.md in this folder ("Real-text corpus").
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import sysconfig
import tokenize
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Split = Literal["train", "heldout", "all"]
Source = Literal["stdlib", "builtin"]
SKIP_DIRS = {
    "site-packages",
    "dist-packages",
    "test",
    "tests",
    "idle_test",
    "__pycache__",
    "lib2to3",
    "turtledemo",
    "ensurepip",
    "venv",
    "pydoc_data",
}


@dataclass(frozen=True)
class Document:
    """One document: its text, kind (``docstring``, ``comment``, ``code`` or ``builtin``),
    language (``en``, ``python``, ... as known) and where it came from."""

    text: str
    kind: str
    language: str
    source: str


def stdlib_root() -> Path:
    """The standard library folder of the running Python."""
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        parts = set(path.relative_to(root).parts[:-1])
        if not parts & SKIP_DIRS and not path.name.startswith("test_"):
            yield path


def _comment_blocks(source: str) -> list[str]:
    """Runs of consecutive ``#`` comment lines, joined (shebangs and pragmas left out)."""
    blocks: list[str] = []
    current: list[str] = []
    last_line = -2
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type != tokenize.COMMENT:
                continue
            text = tok.string.lstrip("#").strip()
            if text.startswith(("!", "-*-", "type:", "noqa", "pragma")) or not text:
                continue
            if tok.start[0] != last_line + 1 and current:
                blocks.append(" ".join(current))
                current = []
            current.append(text)
            last_line = tok.start[0]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    if current:
        blocks.append(" ".join(current))
    return blocks


def _file_documents(path: Path, root: Path) -> Iterator[Document]:
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (UnicodeDecodeError, SyntaxError, ValueError):
        return
    rel = str(path.relative_to(root))
    lines = source.splitlines()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                yield Document(doc, "docstring", "en", rel)
    for block in _comment_blocks(source):
        yield Document(block, "comment", "en", rel)
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            end = getattr(node, "end_lineno", None) or node.lineno
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            yield Document("\n".join(lines[start - 1 : end]), "code", "python", rel)


def _builtin_documents() -> Iterator[Document]:
    from lens.data.builtin import load_builtin  # noqa: PLC0415

    for rec in load_builtin("texts").records:
        yield Document(rec.text, "builtin", rec.language, "lens:texts")
    for rec in load_builtin("facts").records:
        yield Document(f"{rec.prompt} {rec.object}.", "builtin", rec.language, "lens:facts")
    for rec in load_builtin("requests").records:
        yield Document(rec.text, "builtin", rec.language, "lens:requests")


def _key(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def in_heldout(text: str, fraction: float) -> bool:
    """Whether ``text`` belongs to the held-out split (a stable hash of the normalised text).

    Example:
        >>> in_heldout("hello world", 0.5) == in_heldout("hello   world", 0.5)
        True
    """
    return int(_key(text)[:8], 16) / 16**8 < fraction


def documents(
    *,
    split: Split = "train",
    sources: Sequence[Source] = ("stdlib", "builtin"),
    heldout_fraction: float = 0.05,
    min_chars: int = 40,
    max_chars: int = 4000,
    kinds: Sequence[str] | None = None,
    root: str | Path | None = None,
) -> Iterator[Document]:
    """Stream the corpus's documents (deduplicated; one split).

    Args:
        split: ``"train"``, ``"heldout"`` or ``"all"``.
        sources: ``"stdlib"`` (this Python's standard library) and/or ``"builtin"``.
        heldout_fraction: share of documents in the held-out split (by stable hash).
        min_chars, max_chars: documents shorter are dropped (built-in texts are kept
            whatever their length); longer ones are cut at a line break before ``max_chars``.
        kinds: keep only these kinds (``docstring``, ``comment``, ``code``, ``builtin``).
        root: another standard-library folder to read (default: the running Python's).

    Example:
        >>> docs = documents(split="heldout", sources=["builtin"])
        >>> first = next(docs)
        >>> first.kind, first.source.startswith("lens:")
        ('builtin', True)
    """
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be 'train', 'heldout' or 'all', got {split!r}")
    unknown = [s for s in sources if s not in ("stdlib", "builtin")]
    if unknown or not sources:
        raise ValueError(f"sources must be among ['stdlib', 'builtin'], got {list(sources)}")
    if not 0 <= heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    seen: set[bytes] = set()
    for doc in _all(sources, Path(root) if root is not None else stdlib_root()):
        text = _trim(doc.text, max_chars)
        if doc.kind != "builtin" and len(text) < min_chars:
            continue
        if kinds is not None and doc.kind not in kinds:
            continue
        key = _key(text)
        digest = bytes.fromhex(key[:32])
        if digest in seen:
            continue
        seen.add(digest)
        held = int(key[:8], 16) / 16**8 < heldout_fraction
        if split == "all" or held == (split == "heldout"):
            yield Document(text, doc.kind, doc.language, doc.source)


def _all(sources: Sequence[Source], root: Path) -> Iterator[Document]:
    if "builtin" in sources:
        yield from _builtin_documents()
    if "stdlib" in sources:
        if not root.is_dir():
            raise FileNotFoundError(f"no standard library at {root}")
        for path in _stdlib_files(root):
            yield from _file_documents(path, root)


def _trim(text: str, max_chars: int) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text.strip())
    if len(text) <= max_chars:
        return text
    cut = text.rfind("\n", 0, max_chars)
    return text[: cut if cut > max_chars // 2 else max_chars]


def texts(**kwargs: object) -> Iterator[str]:
    """The texts of :func:`documents` (same arguments)."""
    for doc in documents(**kwargs):  # type: ignore[arg-type]
        yield doc.text
