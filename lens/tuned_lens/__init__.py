"""The tuned lens: one trained affine translator per layer, decoded like the logit lens.

tl = lens.tuned_lens.train(model, texts)          # or lens.tuned_lens.load("organism")
res = lens.logit_lens(model, prompts, translator=tl)
print(lens.tuned_lens.evaluate(model, heldout_texts, translator=tl).table())
"""

from __future__ import annotations

from pathlib import Path

from lens.tuned_lens.evaluate import LensComparison, evaluate
from lens.tuned_lens.training import train
from lens.tuned_lens.translators import TunedLens


def load(source: str | Path, strict: bool = True) -> TunedLens:
    """Translators shipped with lens (``"organism"``) or saved in a folder.

    Example:
        >>> import lens
        >>> tl = lens.tuned_lens.load("organism")
        >>> tl.layers, tl.site
        ([0, 1, 2, 3, 4, 5], 'resid_post')
    """
    if str(source) == "organism":
        from lens.tuned_lens.organism import SHIPPED

        return TunedLens.load(SHIPPED, strict=strict)
    return TunedLens.load(source, strict=strict)


__all__ = ["LensComparison", "TunedLens", "evaluate", "load", "train"]
