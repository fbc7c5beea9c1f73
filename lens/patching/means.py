"""Mean head outputs over a corpus, for ``HeadAblation(mode="mean")``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jaxtyping import Float
from torch import Tensor

from interventions import bridge as hb
from interventions.base import Positions


def head_means(
    model: Any,
    prompts: Sequence[Any],
    *,
    layers: str | int | Sequence[int] = "all",
    positions: Positions = "all",
    batch_size: int = 8,
    progress: bool = False,
) -> dict[int, Float[Tensor, "n_heads d_head"]]:
    """Each head's mean ``hook_z`` over the real tokens of ``prompts`` (float64), streamed
    through ``lens.collect`` (a :class:`lens.stats.MomentStats` over ``attn.hook_z``).

    Args:
        model: a TransformerBridge.
        prompts: texts or token-id lists.
        layers: ``"all"``, one layer or a list.
        positions: which tokens count (``"all"`` real tokens, ``"last"``, or indices).
        batch_size: prompts per forward.

    Returns:
        ``{layer: [n_heads, d_head]}``, ready for ``HeadAblation(..., mode="mean", means=...)``.

    Example:
        >>> import lens
        >>> from interventions import HeadAblation
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> means = head_means(model, [[1, 2, 3], [4, 5]], layers=[1])
        >>> tuple(means[1].shape)
        (4, 16)
        >>> ablation = HeadAblation({1: [0, 2]}, mode="mean", means=means)
    """
    from lens.collect import collect  # noqa: PLC0415  (collect imports the hook machinery)
    from lens.stats.accumulators import MomentStats  # noqa: PLC0415

    acc = MomentStats.for_model(model, ["all"], site="z", layers=layers)
    collect(
        model,
        [(p, "all") for p in prompts],
        accumulators=[acc],
        batch_size=batch_size,
        positions=positions,
        progress=progress,
    )
    shape = (hb.n_heads(model), int(model.cfg.d_head))
    mean = acc.mean()[0]  # [site, n_heads * d_head]
    return {layer: mean[i].view(shape) for i, layer in enumerate(acc.layers)}
