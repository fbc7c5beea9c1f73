"""Named metrics for circuit discovery, each read at every row's last real token and sliceable
by pairs (``rows(start, stop)``) so chunks of pairs and copy-major repeated batches work.

``"logit_diff"`` (default): logit(answer) - logit(wrong) (or logit(answer) alone without wrong);
``"prob"`` / ``"logprob"``: the answer's probability / log-probability; ``"kl"``: minus the KL
divergence from the clean run's next-token distribution to the run's (0 on the clean run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from lens.patching.pairs import LogitDiff, Metric
from lens.tokens import Batch

MetricName = Literal["logit_diff", "prob", "logprob", "kl"]
METRICS: tuple[str, ...] = ("logit_diff", "prob", "logprob", "kl")


def _last(logits: Tensor, batch: Batch) -> Tensor:
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, batch.last_positions.to(logits.device)]


@dataclass
class AnswerProb:
    """The answer's probability (``log=False``) or log-probability at the last real token."""

    answer: Int[Tensor, " pairs"]
    log: bool = False
    last_token_only = True

    def __call__(self, logits: Tensor, batch: Batch) -> Tensor:
        logp = _last(logits, batch).float().log_softmax(-1)
        reps = logits.shape[0] // self.answer.shape[0]
        out = logp.gather(1, self.answer.repeat(reps).to(logits.device)[:, None])[:, 0]
        return out if self.log else out.exp()

    def rows(self, start: int, stop: int) -> AnswerProb:
        return AnswerProb(self.answer[start:stop], self.log)


@dataclass
class NegKL:
    """``-KL(clean || run)`` of the next-token distributions at the last real token."""

    clean_logprobs: Float[Tensor, "pairs vocab"]
    last_token_only = True

    def __call__(self, logits: Tensor, batch: Batch) -> Tensor:
        logq = _last(logits, batch).float().log_softmax(-1)
        reps = logits.shape[0] // self.clean_logprobs.shape[0]
        logp = self.clean_logprobs.repeat(reps, 1).to(logq.device)
        return -(logp.exp() * (logp - logq)).sum(-1)

    def rows(self, start: int, stop: int) -> NegKL:
        return NegKL(self.clean_logprobs[start:stop])


def named_metric(model: Any, name: str, pairs: Any) -> Metric:
    """The metric ``name`` for prepared pairs (their answer/wrong ids, their clean run)."""
    if name not in METRICS:
        raise ValueError(f"metric must be a callable or one of {list(METRICS)}, got {name!r}")
    if name == "logit_diff":
        if pairs.answer is None:
            raise ValueError("metric='logit_diff' needs answer= (and optionally wrong=)")
        return pairs.metric
    if name == "kl":
        clean = pairs.clean
        with torch.no_grad():
            logits = model(clean.tokens, attention_mask=clean.attention_mask)
        return NegKL(_last(logits, clean).float().log_softmax(-1).cpu())
    if pairs.answer is None:
        raise ValueError(f"metric={name!r} needs answer=")
    return AnswerProb(pairs.answer, log=name == "logprob")


def metric_rows(metric: Metric, start: int, stop: int) -> Metric:
    """The metric for pairs ``start:stop`` (named metrics slice their per-pair data; a custom
    metric gets each chunk's batch as is)."""
    if isinstance(metric, LogitDiff):
        wrong = None if metric.wrong is None else metric.wrong[start:stop]
        return LogitDiff(metric.answer[start:stop], wrong)
    if isinstance(metric, (AnswerProb, NegKL)):
        return metric.rows(start, stop)
    return metric


def prepare_pairs(
    model: Any, clean: Any, corrupt: Any, *, answer: Any, wrong: Any, metric: Any
) -> Any:
    """:func:`lens.patching.pairs.prepare` (last position) with ``metric`` a callable, None
    (the logit difference) or a name of :data:`METRICS`."""
    from lens.patching.pairs import prepare

    if not isinstance(metric, str):
        return prepare(
            model, clean, corrupt, answer=answer, wrong=wrong, metric=metric, positions="last"
        )
    if metric not in METRICS:
        raise ValueError(f"metric must be a callable or one of {list(METRICS)}, got {metric!r}")
    placeholder = None if answer is not None else (lambda logits, batch: logits[:, -1, 0])
    pairs = prepare(
        model, clean, corrupt, answer=answer, wrong=wrong, metric=placeholder, positions="last"
    )
    pairs.metric = named_metric(model, metric, pairs)
    return pairs
