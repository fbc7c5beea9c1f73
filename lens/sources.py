"""Model sources checked without importing torch or TransformerLens.

:func:`check_source` says which kind of source a string names, or raises
:class:`ModelLoadError` (saying what is accepted) for one that cannot load: a missing path, a
file, a folder without ``config.json``. :func:`check_hub_id` refuses a Hugging Face id that is
neither cached nor reachable. Both cost milliseconds, so a command can refuse a bad source,
and say what it is about to load, before the seconds of heavy imports that
:func:`lens.load_model` pays.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Literal

__all__ = [
    "ACCEPTED",
    "ModelLoadError",
    "SourceKind",
    "cached_on_disk",
    "PLANTED_NAMES",
    "check_hub_id",
    "check_source",
    "hub_reachable",
]

ACCEPTED = (
    "accepted sources: a TransformerBridge; a TransformerBridgeConfig or dict (random model); "
    "'organism' (or 'organism-planted', 'organism-planted-null', 'organism-planted-shortcut'); "
    "'smollm2-135m-instruct'; "
    "a local Hugging Face folder containing config.json; "
    "or a Hugging Face id such as 'gpt2' (needs the hub or a local HF cache)"
)

PlantedVariant = Literal["shared", "null", "shortcut"]
# source name -> variant of the planted organism (lens.organism.planted builds each one)
PLANTED_VARIANTS: dict[str, PlantedVariant] = {
    "organism-planted": "shared",
    "organism-planted-null": "null",
    "organism-planted-shortcut": "shortcut",
}
PLANTED_NAMES = tuple(PLANTED_VARIANTS)
SourceKind = Literal["organism", "organism_folder", "smollm2", "hf_folder", "hf_id"]


class ModelLoadError(ValueError):
    """The source could not be turned into a model; the message says what is accepted."""


def check_source(name: str | os.PathLike) -> SourceKind:
    """The kind of model a source string names, checked on disk (no heavy import).

    Raises:
        ModelLoadError: a path that does not exist, is a file, or is a folder without
            ``config.json`` (or whose ``config.json`` is not JSON).

    Example:
        >>> check_source("organism")
        'organism'
        >>> try:
        ...     check_source("/nonexistent")
        ... except ModelLoadError as exc:
        ...     print(str(exc).split(";")[0])
        '/nonexistent' does not exist
    """
    name = os.fspath(name)
    if name in ("organism", *PLANTED_NAMES):
        return "organism"
    if name.lower() == "smollm2-135m-instruct":
        return "smollm2"
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "world.json").is_file():
            return "organism_folder"
        config = path / "config.json"
        if not config.is_file():
            raise ModelLoadError(
                f"{name!r} has no config.json, so it is not a Hugging Face model folder; {ACCEPTED}"
            )
        try:
            json.loads(config.read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{config} is not readable JSON ({exc})") from None
        return "hf_folder"
    if path.exists():
        raise ModelLoadError(f"{name!r} is a file, not a model folder; {ACCEPTED}")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not "owner/name"
        raise ModelLoadError(f"{name!r} does not exist; {ACCEPTED}")
    return "hf_id"


def check_hub_id(name: str) -> None:
    """Raise :class:`ModelLoadError` unless the Hugging Face id ``name`` is in the local HF
    cache or the hub answers (about 2 s at most when it does not)."""
    if cached_on_disk(name) or hub_reachable():
        return
    raise ModelLoadError(
        f"{name!r} looks like a Hugging Face id, but the hub is unreachable (or "
        "HF_HUB_OFFLINE=1) and it is not in the local HF cache. Load a local folder "
        "instead: lens.load_model('/path/to/folder') with config.json, model.safetensors "
        "and tokenizer files, or use 'organism' / 'smollm2-135m-instruct'. "
        f"Otherwise: {ACCEPTED}"
    )


def hub_reachable(timeout: float = 2.0) -> bool:
    """True when the Hugging Face hub answers a TCP connect within ``timeout`` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://")[-1].split("/")[0].split(":")[0]
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)  # DNS can hang past the socket timeout
    return bool(result and result[0])


def cached_on_disk(name: str) -> bool:
    """True when ``name``'s config.json is in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache  # noqa: PLC0415

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # noqa: BLE001 - any cache problem means "not cached"
        return False
