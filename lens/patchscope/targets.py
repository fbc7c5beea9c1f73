"""Where a patchscope writes the source's hidden state: a target prompt and a position in it,
and the presets of Ghandeharioun et al. (2024, arXiv 2401.06102)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

PresetName = Literal["identity", "future"]

IDENTITY_PROMPT = "cat -> cat ; 1135 -> 1135 ; hello -> hello ; ?"
FUTURE_PROMPT = 'Hello! Could you please tell me more about "'


@dataclass(frozen=True)
class Target:
    """A target prompt and the position its patched state goes to.

    Args:
        prompt: text, or token ids (used as given).
        position: column in the tokenized target (negative from its end; -1: the last token).
            Ignored when ``placeholder`` is set.
        placeholder: the word whose (last) token receives the state, e.g. ``"x"`` in
            ``"The capital of x is"``.
        max_new_tokens: generate this many tokens from each patched run (None: only the
            next-token distribution).
        name: a label for results (``"identity"``, ``"future"``, ``"attribute"``, ...).

    Example:
        >>> Target("The capital of x is", placeholder="x").name
        'custom'
    """

    prompt: str | tuple[int, ...]
    position: int = -1
    placeholder: str | None = None
    max_new_tokens: int | None = None
    name: str = "custom"

    def __post_init__(self) -> None:
        if isinstance(self.prompt, list):
            object.__setattr__(self, "prompt", tuple(self.prompt))
        if not self.prompt:
            raise ValueError("the target prompt is empty")
        if isinstance(self.position, bool) or not isinstance(self.position, int):
            raise TypeError(f"target position must be an int, got {self.position!r}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1 (or None), got {self.max_new_tokens}")

    def locate(self, model: Any, tokens: list[int]) -> int:
        """The column (>= 0) of the patched position in ``tokens`` (the tokenized prompt)."""
        n = len(tokens)
        if self.placeholder is None:
            if not -n <= self.position < n:
                raise ValueError(
                    f"target position {self.position} is outside the target prompt ({n} tokens: "
                    f"columns 0..{n - 1}, or -{n}..-1 from its end)"
                )
            return self.position % n
        want = self.placeholder.strip()
        decode = model.tokenizer.decode
        hits = [i for i, t in enumerate(tokens) if decode([t]).strip() == want]
        if not hits:
            shown = [decode([t]) for t in tokens]
            raise ValueError(
                f"placeholder {self.placeholder!r} is not a token of the target prompt "
                f"(tokens: {shown}); write it as a separate word or give position= instead"
            )
        return hits[-1]


def identity(max_new_tokens: int | None = None) -> Target:
    """The token-identity patchscope: a few-shot "repeat the token" prompt, the state written
    at its final ``?``; the next token decodes what the state encodes.

    Example:
        >>> identity().prompt
        'cat -> cat ; 1135 -> 1135 ; hello -> hello ; ?'
    """
    return Target(IDENTITY_PROMPT, -1, max_new_tokens=max_new_tokens, name="identity")


def attribute(prompt: str, placeholder: str = "x", max_new_tokens: int | None = 8) -> Target:
    """Attribute extraction: a prompt naming the attribute, the state written at its
    placeholder, e.g. ``attribute("The capital city of x is")``; generates the answer.

    Example:
        >>> attribute("The capital city of x is").placeholder
        'x'
    """
    return Target(prompt, placeholder=placeholder, max_new_tokens=max_new_tokens, name="attribute")


def future(max_new_tokens: int = 4) -> Target:
    """Future-lens style: a generic context whose last token takes the state, then several
    tokens generated, reading what the state says about the tokens after the next.

    Example:
        >>> future().max_new_tokens
        4
    """
    return Target(FUTURE_PROMPT, -1, max_new_tokens=max_new_tokens, name="future")


def preset(name: PresetName) -> Target:
    """A preset target by name (``"identity"`` or ``"future"``; attribute extraction needs a
    prompt: :func:`attribute`)."""
    if name == "identity":
        return identity()
    if name == "future":
        return future()
    raise ValueError(
        f"unknown patchscope preset {name!r}: use 'identity', 'future', "
        "lens.patchscope.attribute('... x ...') or a Target"
    )
