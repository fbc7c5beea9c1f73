"""What a command checks before any work: its ``--out`` (for real, see :mod:`lens.output`)
and its model source (on disk, before torch is imported), announcing what it will load."""

from __future__ import annotations

import sys

from lens.output import OutputFolder, check_out_dir

__all__ = ["SOURCE_HELP", "OutputFolder", "announce_source", "check_out_dir", "check_source"]

RANDOM_FAMILIES = ("llama", "gpt2")
# the help text of every model-source argument
SOURCE_HELP = "organism | smollm2-135m-instruct | HF folder | HF id | random:llama | random:gpt2"


def check_source(source: str) -> str:
    """What ``source`` will load, in words, or a ValueError saying what is accepted; costs
    milliseconds (no torch): a missing path, a file or a folder without config.json is refused
    here, and an uncached Hugging Face id when the hub is unreachable.

    Example:
        >>> check_source("random:llama")
        'a random llama model'
        >>> try:
        ...     check_source("random:bert")
        ... except ValueError as exc:
        ...     print(exc)
        random:bert: family must be llama or gpt2 (random:llama, random:gpt2)
    """
    from lens.sources import check_hub_id
    from lens.sources import check_source as kind_of

    if source.startswith("random:"):
        family = source.split(":", 1)[1]
        if family not in RANDOM_FAMILIES:
            raise ValueError(f"{source}: family must be llama or gpt2 (random:llama, random:gpt2)")
        return f"a random {family} model"
    kind = kind_of(source)
    if kind == "hf_id":
        check_hub_id(source)
    return {
        "organism": "the shipped model organism",
        "organism_folder": "a trained organism folder",
        "smollm2": "SmolLM2-135M-Instruct (from the lens cache)",
        "hf_folder": "a Hugging Face folder",
        "hf_id": "a Hugging Face id",
    }[kind]


def announce_source(source: str) -> None:
    """Check ``source`` (see :func:`check_source`) and say on stderr that it is being loaded,
    before the seconds of imports a model costs."""
    what = check_source(source)
    print(f"loading {source} ({what}) …", file=sys.stderr, flush=True)
