"""Ground truth for studies that run on the organism: its world, and word -> token id lookups
checked against the model's tokenizer (so a study fails with a clear message on a model that
was not trained on the organism's world)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lens.sources import PLANTED_VARIANTS


def world_folder(model: Any, folder: str | Path | None) -> Path | None:
    """Where the model's world.json lives: ``folder`` (or the folder of a given world.json),
    else the model's own folder (tokenizer path or model name), else None (the shipped one)."""
    if folder is not None:
        path = Path(folder)
        return path.parent if path.name == "world.json" else path
    tok = getattr(model, "tokenizer", None)
    for name in (getattr(tok, "name_or_path", None), getattr(model.cfg, "model_name", None)):
        if name and (Path(str(name)) / "world.json").is_file():
            return Path(str(name))
    return None


def organism_world(model: Any, folder: str | Path | None = None, required: bool = True) -> Any:
    """The organism's world (of ``folder``, of the model's own folder, or the shipped one),
    checked against ``model``'s tokenizer.

    The one place studies decide "is this model the organism, and where is its world?"
    (:func:`lens.studies.datasets.study_dataset` and :func:`lens.studies.datasets.is_organism`
    ask it; loading a model by folder is :mod:`lens.models`' job).

    Raises:
        ValueError: the model's tokenizer does not hold the world's words (not an organism);
            with ``required=False`` returns None instead.

    Example:
        >>> import lens
        >>> organism_world(lens.load_model(lens.tiny_config("llama")), required=False) is None
        True
    """
    from lens import organism

    world = organism.world(world_folder(model, folder))
    tok = getattr(model, "tokenizer", None)
    ok = tok is not None and hasattr(tok, "convert_tokens_to_ids")
    if ok and tok is not None:
        ids = tok.convert_tokens_to_ids(world.vocabulary())
        ok = not any(i is None or i == tok.unk_token_id for i in ids)
        ok = ok and max(ids) < model.cfg.d_vocab
    if ok:
        return world
    if not required:
        return None
    raise ValueError(
        "this study needs the organism: the model's tokenizer does not hold the organism "
        "world's words (load it with lens.load_model('organism'), or pass the folder of an "
        "organism you trained)"
    )


def model_label(model: Any) -> str:
    """A short name for reports: "organism" for the shipped one, a local folder's own name
    (not its path: ``smollm2-135m-instruct``, not the cache directory), else the model's name."""
    from lens.organism import SHIPPED

    name = getattr(model.cfg, "model_name", None)
    if not name:
        return type(model).__name__
    path = Path(str(name))
    if path.resolve() == SHIPPED.resolve():
        return "organism"
    if path.name.startswith("organism-planted-"):  # lens.organism.planted.planted_folder
        kind = path.name.split("-")[2]  # organism-planted-VARIANT-vN-STAMP
        return next(
            (n for n, v in PLANTED_VARIANTS.items() if v == kind), f"organism-planted-{kind}"
        )
    return path.name if path.is_dir() else str(name)


def split(items: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Shuffle ``items`` with ``seed``; return (first ``round(fraction * n)`` (at least 1 and
    at most n - 1), the rest)."""
    import random

    if len(items) < 2:
        raise ValueError(f"need at least two items to split, got {len(items)}")
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    n = min(max(round(fraction * len(shuffled)), 1), len(shuffled) - 1)
    return shuffled[:n], shuffled[n:]


def word_ids(model: Any, words: Sequence[str]) -> list[int]:
    """Token id of every word by lens's token rule (each word of the organism's world is one
    token the tokenizer knows; anything else raises :class:`lens.tokens.TokenError`)."""
    from lens.tokens import token_id

    return [token_id(model, w, what="word") for w in words]


def language_token_ids(world: Any, model: Any) -> dict[str, set[int]]:
    """Token ids per language/notation (``lens.organism.token_languages``), plus ``"code"``:
    every notation's tokens and those shared by notations only."""
    from lens.organism import token_languages

    langs = token_languages(world, model.tokenizer)[: int(model.cfg.d_vocab)]
    out: dict[str, set[int]] = {}
    for i, lang in enumerate(langs):
        out.setdefault(lang, set()).add(i)
    code: set[int] = set(out.get("code", set()))
    for notation in world.notations:
        code |= out.get(notation, set())
    out["code"] = code
    return out


def non_pivot_scripts(world: Any, chosen: Iterable[str] | None) -> list[str]:
    """``chosen`` checked against the world's scripts (None: every non-pivot one)."""
    scripts = [s for s in world.scripts if s != world.pivot]
    if chosen is None:
        return scripts
    chosen = list(chosen)
    bad = [s for s in chosen if s not in world.scripts]
    if bad:
        raise ValueError(f"unknown languages/notations {bad}; known: {world.scripts}")
    return chosen
