"""Difference-in-means candidate directions (Arditi et al., 2024, "Refusal in language models
is mediated by a single direction").

For every layer l and chosen position i: r[l, i] = mean over positive prompts of the residual
stream at (l, i) minus the same mean over negative prompts. The site is ``resid_pre``
(the residual stream entering block l), as in the paper; by default at the last real token of
each prompt. The paper uses the post-instruction tokens of the chat template:
``from_end=range(-5, 0)`` for a 5-token template suffix (offsets from each prompt's last real
token, mask-aware).

Means are float64 running sums over the corpus (``PositionMeans``), so memory is constant in
the number of prompts, and the computation resumes and shards like any ``lens.collect``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jaxtyping import Float
from torch import Tensor

from interventions.base import Positions
from interventions.sites import Site
from lens.collect import collect
from lens.stats.accumulators import PositionMeans
from lens.stats.select import normalize_positions


@dataclass
class DiffInMeans:
    """Candidate directions.

    Attributes:
        directions: ``[layer, position, d_model]`` mean(positive) - mean(negative), float64.
        positive_mean, negative_mean: the two means, same shape.
        layers: layer of each row.
        positions: what each position column is: offsets from each prompt's last real token
            (with ``from_end`` or ``"last"``, e.g. ``(-1,)``) or padded-batch columns (with
            integer ``positions``); ``position_kind`` says which.
        site: the site read at every layer (:mod:`interventions.sites`), e.g. ``resid_pre``.
    """

    directions: Float[Tensor, "layer position d_model"]
    positive_mean: Float[Tensor, "layer position d_model"]
    negative_mean: Float[Tensor, "layer position d_model"]
    layers: list[int]
    positions: tuple[int, ...]
    site: Site
    position_kind: Literal["from_end", "columns"] = "from_end"

    def direction(self, layer: int, position: int = -1) -> Float[Tensor, " d_model"]:
        """The candidate at ``layer`` and position offset ``position``."""
        if layer not in self.layers:
            raise ValueError(f"layer {layer} not collected; layers are {self.layers}")
        if position not in self.positions:
            raise ValueError(f"position {position} not collected; positions are {self.positions}")
        return self.directions[self.layers.index(layer), self.positions.index(position)]

    def candidates(self) -> dict[tuple[int, int], Float[Tensor, " d_model"]]:
        """``{(layer, position): direction}`` for :func:`select_direction`."""
        return {
            (layer, pos): self.directions[a, b]
            for a, layer in enumerate(self.layers)
            for b, pos in enumerate(self.positions)
        }


def diff_in_means(
    model: Any,
    positive: Sequence[Any],
    negative: Sequence[Any],
    *,
    layers: str | int | Sequence[int] = "all",
    positions: Positions | None = None,
    from_end: Sequence[int] | None = None,
    site: Site = "resid_pre",
    **collect_kwargs: Any,
) -> DiffInMeans:
    """Per-layer, per-position mean(positive) - mean(negative) of the residual stream.

    Args:
        model: a TransformerBridge.
        positive, negative: prompts (texts or token-id lists), e.g. harmful / harmless.
        layers: ``"all"``, one layer or a list (negative: counted from the end).
        positions: ``"last"`` (default) or integer columns of the padded batch (see
            ``interventions.base.Positions``).
        from_end: instead of ``positions``, offsets from each prompt's last real token, e.g.
            ``[-2, -1]``.
        site: the site read (default ``resid_pre``, the input of block l; any site of
            :mod:`interventions.sites`).
        **collect_kwargs: for :func:`lens.collect` (batch_size, checkpoint, progress, ...).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> d = diff_in_means(model, [[1, 2, 3]], [[4, 5]], progress=False)
        >>> tuple(d.directions.shape)
        (3, 1, 64)
    """
    if positions is None and from_end is None:
        positions = "last"
    pos = normalize_positions(positions, from_end)
    if pos.kind == "all":
        raise ValueError("diff_in_means needs fixed positions: 'last', columns or from_end")
    positive, negative = list(positive), list(negative)
    if not positive or not negative:
        raise ValueError("diff_in_means needs at least one positive and one negative prompt")
    acc = PositionMeans.for_model(
        model, ["positive", "negative"], site=site, layers=layers, n_positions=pos.n_slots
    )
    corpus = [(p, "positive") for p in positive] + [(n, "negative") for n in negative]
    if pos.kind == "from_end":
        collect(model, corpus, accumulators=[acc], from_end=list(pos.indices), **collect_kwargs)
    else:
        collect(model, corpus, accumulators=[acc], positions=list(pos.indices), **collect_kwargs)
    mean = acc.mean().cpu()  # [group, layer, position, d_model]
    return DiffInMeans(
        directions=mean[0] - mean[1],
        positive_mean=mean[0],
        negative_mean=mean[1],
        layers=list(acc.layers),
        positions=pos.indices,
        site=site,
        position_kind="from_end" if pos.kind == "from_end" else "columns",
    )


def cosine(a: Tensor, b: Tensor) -> float:
    """Cosine similarity of two vectors in float64."""
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))
