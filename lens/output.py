"""Output folders written all at once: checked for real before any work, filled in a
temporary folder next to them, moved into place when complete.

Every command (and ``StudyResult.save``) writes through :class:`OutputFolder`:

* **Checked for real.** :func:`check_out_dir` creates the folder (and a file in it), then
  removes what it created: a path that cannot be written fails at once, also as root, where
  ``os.access`` says yes to everything.
* **Atomic.** ``OutputFolder(out)`` creates ``.NAME.partial-XXXX`` beside ``out``; the command
  writes there; :meth:`OutputFolder.commit` moves each entry into ``out`` and writes
  ``lens-complete.json`` last (the entries this run wrote, the process's command line, the
  time). An error or Ctrl-C before that removes the temporary folder and any parent folder
  it created, so ``out`` keeps its old results untouched. While entries are being moved,
  ``out`` holds an ``INCOMPLETE`` file, so an interrupted move is marked.
* **Only what lens wrote is replaced.** Entries listed in an older ``lens-complete.json`` are
  removed; other files in ``out`` (a user's own) are left alone.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["INCOMPLETE", "MARKER", "OutputFolder", "check_out_dir", "is_complete"]

MARKER = "lens-complete.json"
INCOMPLETE = "INCOMPLETE"


def _missing_parents(path: Path) -> list[Path]:
    """The ancestors of ``path`` (itself included) that do not exist, outermost first."""
    missing = []
    for p in [path, *path.parents]:
        if p.exists() or p.is_symlink():
            break
        missing.append(p)
    return missing[::-1]


def _remove_empty(folders: list[Path]) -> None:
    for p in reversed(folders):
        try:
            p.rmdir()
        except OSError:
            break


def _checked(path: str | os.PathLike, option: str) -> Path:
    if str(path).strip() == "":
        raise ValueError(f"{option} is empty: give a folder path")
    out = Path(path).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder: give a folder path")
    for p in out.parents:
        if p.exists() and not p.is_dir():
            raise ValueError(f"{option} {path}: {p} is a file, so no folder can be made inside it")
    return out


def _cannot(option: str, path: str | os.PathLike, exc: OSError) -> ValueError:
    why = exc.strerror or type(exc).__name__
    return ValueError(f"{option} {path}: cannot write there ({why}): choose another folder")


def check_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Raise ValueError (one line, saying what to do) unless ``path`` can be written.

    The check is real: the folder and a file in it are created, then removed again (only what
    this call created), so nothing is left behind either way.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> check_out_dir(f"{folder}/new/results").name, Path(f"{folder}/new").exists()
        ('results', False)
        >>> try:
        ...     check_out_dir("/proc/x")
        ... except ValueError as exc:
        ...     print(exc)
        --out /proc/x: cannot write there (No such file or directory): choose another folder
    """
    out = _checked(path, option)
    created = _missing_parents(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".lens-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _cannot(option, path, exc) from None
    finally:
        _remove_empty(created)
    return Path(path).expanduser()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_complete(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds the marker a finished lens run writes last."""
    return (Path(folder) / MARKER).is_file() and not (Path(folder) / INCOMPLETE).exists()


class OutputFolder:
    """A result folder written into a temporary sibling and moved into place at the end.

    Use as a context manager: the block writes into :attr:`path`; a normal exit commits, an
    exception (Ctrl-C included) discards everything this object created.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "run"
        >>> with OutputFolder(out) as folder:
        ...     _ = (folder.path / "a.txt").write_text("hi")
        ...     out.exists()
        False
        >>> sorted(p.name for p in out.iterdir()), is_complete(out)
        (['a.txt', 'lens-complete.json'], True)
    """

    def __init__(self, out: str | os.PathLike, *, option: str = "--out") -> None:
        self.out = _checked(out, option)
        self.shown = Path(out)
        self._created = _missing_parents(self.out.parent)
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.path = Path(self._temporary())
            os.chmod(self.path, 0o777 & ~_umask())  # mkdtemp makes it private (0700)
        except OSError as exc:
            _remove_empty(self._created)
            raise _cannot(option, out, exc) from None
        self.done = False

    def _temporary(self) -> str:
        """A new folder beside ``out``; inside it when only ``out`` itself is writable (e.g.
        ``--out .`` in a folder whose parent belongs to someone else)."""
        try:
            return tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent)
        except PermissionError:
            if not self.out.is_dir():
                raise
            return tempfile.mkdtemp(prefix=".lens-partial-", dir=self.out)

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()

    def abort(self) -> None:
        """Remove the temporary folder and the parent folders this object created."""
        shutil.rmtree(self.path, ignore_errors=True)
        _remove_empty(self._created)

    def commit(self) -> Path:
        """Move every entry of :attr:`path` into the output folder; write the marker last."""
        if self.done:
            return self.out
        entries = sorted(p.name for p in self.path.iterdir())
        record = {
            "complete": True,
            "entries": entries,
            "command": shlex.join(sys.argv),  # the process that wrote it (CLI or script)
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if not self.out.exists():  # the common case: one rename
            (self.path / MARKER).write_text(json.dumps(record, indent=1))
            os.replace(self.path, self.out)
        else:
            self._merge(entries, record)
        self.done = True
        return self.out

    def _merge(self, entries: list[str], record: dict) -> None:
        (self.out / INCOMPLETE).write_text(
            f"lens is writing this folder ({record['command']}); if this file stays, the run "
            "was interrupted: rerun it\n"
        )
        old = self.out / MARKER
        stale: list[str] = []
        if old.is_file():
            try:
                stale = list(json.loads(old.read_text()).get("entries", []))
            except (OSError, ValueError, AttributeError):
                stale = []
            old.unlink()
        trash = self.path / ".replaced"
        trash.mkdir()
        for name in {*stale, *entries}:
            target = self.out / name
            if (
                name in (MARKER, INCOMPLETE, "", ".", "..")
                or "/" in name
                or not (target.exists() or target.is_symlink())
            ):
                continue
            os.replace(target, trash / name)
        for name in entries:
            os.replace(self.path / name, self.out / name)
        (self.out / MARKER).write_text(json.dumps(record, indent=1))
        (self.out / INCOMPLETE).unlink()
        shutil.rmtree(self.path, ignore_errors=True)
