"""Output paths checked before any work, so that a bad ``--out`` costs nothing."""

from __future__ import annotations

import os
from pathlib import Path


def check_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Raise ValueError (one line, saying what to do) unless ``path`` can become a folder.

    Accepted: an existing writable folder, or a new path whose nearest existing ancestor is a
    writable folder. Nothing is created.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> check_out_dir(f"{folder}/new/results").name
        'results'
        >>> open(f"{folder}/file", "w").close()
        >>> try:
        ...     check_out_dir(f"{folder}/file/sub")
        ... except ValueError as exc:
        ...     print(str(exc).endswith("is a file, so no folder can be made inside it"))
        True
    """
    out = Path(path).expanduser()
    if str(path).strip() == "":
        raise ValueError(f"{option} is empty: give a folder path")
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"{option} {out} is a file, not a folder: give a folder path")
        if not os.access(out, os.W_OK | os.X_OK):
            raise ValueError(f"{option} {out}: folder is not writable: choose another")
        return out
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {out}: {parent} is a file, so no folder can be made inside it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {out}: cannot create it, {parent} is not writable")
    return out
