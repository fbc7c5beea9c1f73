"""Choose one refusal direction among difference-in-means candidates (Arditi et al., 2024).

For each candidate direction r (one per layer and position):

* refusal score of a prompt: ``log p - log(1 - p)`` at its last real token, where p is the total
  next-token probability of the refusal tokens (the first tokens of refusal phrases);
  ``log(1 - p)`` is computed as the log-sum-exp of the other tokens' log-probabilities;
* bypass score: mean refusal score on harmful prompts with r ablated everywhere
  (``DirectionAblation(r)``: every layer's resid_pre, attn_out and mlp_out, all positions);
  lower is better;
* induce score: mean refusal score on harmless prompts with r added at its own layer's
  resid_pre, all positions (``ActivationAddition(r, layer)``, coeff 1);
* KL: mean KL(base || ablated) of the next-token distributions of harmless prompts at the
  last position.

Candidates are dropped when the direction is zero or not finite, when a score is NaN, when
``layer >= max_layer_frac * n_layers``, when KL > ``kl_threshold``, or (with
``induce_filter``) when the induce score is < 0. The kept candidate with the lowest bypass
score wins; every candidate's scores are returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interventions.directions import ActivationAddition, DirectionAblation
from lens.finders.diff_in_means import DiffInMeans
from lens.readout import last_token_logits
from lens.tokens import token_id


@dataclass
class CandidateScore:
    """Scores of one candidate; ``reason`` says why it was dropped ("" when kept)."""

    layer: int
    position: int
    bypass: float
    induce: float
    kl: float
    reason: str = ""

    @property
    def kept(self) -> bool:
        return not self.reason


@dataclass
class DirectionSelection:
    """The chosen direction and every candidate's scores."""

    layer: int
    position: int
    direction: Float[Tensor, " d_model"]
    bypass: float
    induce: float
    kl: float
    baseline_harmful: float
    baseline_harmless: float
    scores: list[CandidateScore] = field(default_factory=list)


class NoDirectionFound(ValueError):
    """Every candidate was filtered out; ``scores`` holds why."""

    def __init__(self, message: str, scores: list[CandidateScore]) -> None:
        super().__init__(message)
        self.scores = scores


def _token_ids(model: Any, refusal_tokens: Sequence[int | str]) -> Tensor:
    """Ids of the refusal tokens (lens's token rule; text stands for its first token)."""
    ids = [token_id(model, t, multi="first", what="refusal token") for t in list(refusal_tokens)]
    if not ids:
        raise ValueError("refusal_tokens is empty")
    return torch.tensor(sorted(set(ids)))


@torch.no_grad()
def last_logprobs(
    model: Any, prompts: Sequence[Any], *, interventions: Sequence[Any] = (), batch_size: int = 16
) -> Float[Tensor, "batch vocab"]:
    """float64 next-token log-probabilities at each prompt's last real token."""
    logits = last_token_logits(
        model, list(prompts), interventions=interventions, batch_size=batch_size
    )
    return torch.log_softmax(logits.double(), dim=-1).cpu()


def refusal_scores(
    logprobs: Float[Tensor, "batch vocab"], refusal_ids: Tensor
) -> Float[Tensor, " batch"]:
    """``log p - log(1 - p)`` per row, p = total probability of ``refusal_ids``.

    Example:
        >>> import torch
        >>> lp = torch.log(torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64))
        >>> refusal_scores(lp, torch.tensor([0])).tolist()
        [0.0]
    """
    is_ref = torch.zeros(logprobs.shape[-1], dtype=torch.bool)
    is_ref[refusal_ids] = True
    log_p = torch.logsumexp(logprobs[:, is_ref], dim=-1)
    log_not_p = torch.logsumexp(logprobs[:, ~is_ref], dim=-1)
    return log_p - log_not_p


def _kl(base: Tensor, other: Tensor) -> Tensor:
    """KL(base || other) per row from log-probabilities."""
    return (base.exp() * (base - other)).sum(-1)


def _as_candidates(
    candidates: DiffInMeans | Mapping[tuple[int, int], Tensor],
) -> dict[tuple[int, int], Tensor]:
    if isinstance(candidates, DiffInMeans):
        return candidates.candidates()
    out = dict(candidates)
    if not out:
        raise ValueError("no candidate directions given")
    for key in out:
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, int) for k in key)):
            raise ValueError(f"candidate keys must be (layer, position) int pairs, got {key!r}")
    return out


def select_direction(
    model: Any,
    candidates: DiffInMeans | Mapping[tuple[int, int], Tensor],
    harmful_val: Sequence[Any],
    harmless_val: Sequence[Any],
    *,
    refusal_tokens: Sequence[int | str],
    kl_threshold: float = 0.1,
    max_layer_frac: float = 0.8,
    induce_filter: bool = True,
    batch_size: int = 16,
    progress: bool = False,
) -> DirectionSelection:
    """Pick the candidate that best removes refusal when ablated (see the module docstring).

    Args:
        model: a TransformerBridge.
        candidates: a :class:`DiffInMeans` or ``{(layer, position): direction}``.
        harmful_val, harmless_val: validation prompts (texts or token-id lists).
        refusal_tokens: token ids (or strings, first token taken) that start a refusal.
        kl_threshold: largest allowed KL on harmless prompts under ablation.
        max_layer_frac: candidates at layers >= this share of the depth are dropped.
        induce_filter: drop candidates whose induce score is < 0.
        batch_size: prompts per forward.
        progress: tqdm bar over candidates.

    Raises:
        NoDirectionFound: every candidate was filtered (its ``scores`` say why).

    Example:
        >>> import lens, torch
        >>> from lens.finders import diff_in_means
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> cands = diff_in_means(model, [[1, 2, 3]], [[4, 5]])
        >>> sel = select_direction(model, cands, [[1, 2, 3]], [[4, 5]], refusal_tokens=[7],
        ...                        kl_threshold=10.0, induce_filter=False)
        >>> len(sel.scores)
        3
    """
    cands = _as_candidates(candidates)
    if not harmful_val or not harmless_val:
        raise ValueError("select_direction needs harmful and harmless validation prompts")
    ref = _token_ids(model, refusal_tokens)
    n_layers = int(model.cfg.n_layers)
    harmful_base = last_logprobs(model, harmful_val, batch_size=batch_size)
    harmless_base = last_logprobs(model, harmless_val, batch_size=batch_size)
    scores: list[CandidateScore] = []
    for (layer, position), vec in tqdm(
        cands.items(), desc="select_direction", disable=not progress
    ):
        vec = vec.detach().double().cpu()
        nan = float("nan")
        if layer >= max_layer_frac * n_layers:  # the cap comes first: no forwards spent on it
            reason = f"layer >= {max_layer_frac} * n_layers"
            scores.append(CandidateScore(layer, position, nan, nan, nan, reason))
            continue
        if not bool(torch.isfinite(vec).all()) or float(vec.norm()) == 0.0:
            scores.append(CandidateScore(layer, position, nan, nan, nan, "zero or non-finite"))
            continue
        ablate = DirectionAblation(vec)
        bypass = refusal_scores(
            last_logprobs(model, harmful_val, interventions=[ablate], batch_size=batch_size), ref
        )
        ablated = last_logprobs(model, harmless_val, interventions=[ablate], batch_size=batch_size)
        kl = _kl(harmless_base, ablated)
        add = ActivationAddition(vec, layer=layer)
        induce = refusal_scores(
            last_logprobs(model, harmless_val, interventions=[add], batch_size=batch_size), ref
        )
        s = CandidateScore(
            layer, position, float(bypass.mean()), float(induce.mean()), float(kl.mean())
        )
        if any(v != v for v in (s.bypass, s.induce, s.kl)):
            s.reason = "nan score"
        elif s.kl > kl_threshold:
            s.reason = f"kl > {kl_threshold}"
        elif induce_filter and s.induce < 0:
            s.reason = "induce score < 0"
        scores.append(s)
    kept = [s for s in scores if s.kept]
    if not kept:
        reasons: dict[str, int] = {}
        for s in scores:
            reasons[s.reason] = reasons.get(s.reason, 0) + 1
        raise NoDirectionFound(f"every candidate was filtered out: {reasons}", scores)
    best = min(kept, key=lambda s: s.bypass)
    return DirectionSelection(
        layer=best.layer,
        position=best.position,
        direction=cands[(best.layer, best.position)].detach().double().cpu(),
        bypass=best.bypass,
        induce=best.induce,
        kl=best.kl,
        baseline_harmful=float(refusal_scores(harmful_base, ref).mean()),
        baseline_harmless=float(refusal_scores(harmless_base, ref).mean()),
        scores=scores,
    )
