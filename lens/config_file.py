"""Reading a JSON config file into its object, with errors that name the file (light: no torch,
so the CLI checks ``--config`` before any heavy import; study configs read files through it too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json_object(path: str | Path) -> dict[str, Any]:
    """The JSON object held by ``path``; a ValueError naming the file when it cannot be read,
    is not UTF-8, is not valid JSON (line and column) or holds something else than an object.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "c.json"
        >>> _ = f.write_text('{"samples": 3}')
        >>> read_json_object(f)
        {'samples': 3}
        >>> _ = f.write_text("[1]")
        >>> read_json_object(f)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ...c.json: a config file must hold a JSON object
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"{path}: cannot read the config file ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
            f"{err.start}); a config file holds a JSON object"
        ) from None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
        ) from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config file must hold a JSON object")
    return values
