"""Scoring a model's answers to prompts (fact queries, translations) on any model.

An answer is the text that follows its prompt after one space (``prompt + " " + answer``, as in
``lens.data`` fact records). Its tokens are the tokens of that full text after the prompt's
own tokens, as the model's tokenizer splits them (a BOS is prepended by the model's default,
as in :func:`lens.tokens.batch`). Two ways to score (``AnswerScoring``):

* ``"first_token"``: the answer counts as given when the argmax of the next-token logits at
  the prompt's last token is the answer's first token (the seed papers' scoring; exact for
  one-token answers such as the organism's). Cannot tell "North America" from "North Korea".
* ``"teacher_forced"``: the whole answer is fed after the prompt; it counts as given when at
  every answer position the argmax is the answer's next token, i.e. the answer is exactly
  the start of the model's greedy continuation. ``logprob`` is the summed log-probability of
  the answer's tokens.

Answers the model cannot express are *skipped and reported*, never scored as wrong: an empty
answer, one that tokenizes to nothing, one with a token the tokenizer does not know (its
unknown token), a token id outside the model's vocabulary, or a prompt whose tokens change
when the answer is appended (a token merged across the boundary).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

AnswerScoring = Literal["first_token", "teacher_forced"]
SCORINGS: tuple[str, ...] = ("first_token", "teacher_forced")

__all__ = [
    "SCORINGS",
    "AnswerScores",
    "AnswerScoring",
    "Answers",
    "SkippedAnswer",
    "describe_scoring",
    "score_answers",
    "skipped_summary",
    "tokenize_answers",
]


@dataclass(frozen=True)
class SkippedAnswer:
    """A (prompt, answer) pair left out because the model cannot express the answer."""

    index: int
    prompt: str
    answer: str
    reason: str


@dataclass
class Answers:
    """Tokenized (prompt, answer) pairs; ``kept`` indexes (into the caller's lists) the usable
    ones, in order; ``prompt_ids`` / ``answer_ids`` are given for the kept pairs only."""

    kept: list[int]
    prompt_ids: list[list[int]]
    answer_ids: list[list[int]]
    skipped: list[SkippedAnswer]

    def __len__(self) -> int:
        return len(self.kept)

    @property
    def first_ids(self) -> Int[Tensor, " n"]:
        """The first token of every kept answer."""
        return torch.tensor([a[0] for a in self.answer_ids], dtype=torch.long)

    def subset(self, rows: Sequence[int]) -> Answers:
        """The kept pairs at positions ``rows`` (of ``kept``); skipped ones are not repeated."""
        return Answers(
            [self.kept[r] for r in rows],
            [self.prompt_ids[r] for r in rows],
            [self.answer_ids[r] for r in rows],
            [],
        )


@dataclass
class AnswerScores:
    """Per kept pair: ``hit`` (answer given, by the scoring used), ``predicted`` (the argmax
    at the prompt's last token) and ``logprob`` (of the first token, or of the whole answer
    for ``"teacher_forced"``)."""

    hit: Bool[Tensor, " n"]
    predicted: Int[Tensor, " n"]
    logprob: Float[Tensor, " n"]


def _why_unusable(tok: Any, answer: list[int]) -> str | None:
    if not answer:
        return "the answer tokenizes to nothing"
    unk = getattr(tok, "unk_token_id", None)
    if unk is not None and unk in answer:
        return "the answer has a word the tokenizer does not know (unknown token)"
    return None


def tokenize_answers(model: Any, prompts: Sequence[str], answers: Sequence[str]) -> Answers:
    """Tokenize ``prompt + " " + answer`` pairs; pairs the model cannot express are skipped
    (see the module docstring) and listed with their reason.

    Example:
        >>> import lens
        >>> model = lens.load_model("organism")
        >>> prompts = ["the job of alice is", "the job of bob is"]
        >>> a = tokenize_answers(model, prompts, ["lawyer", ""])
        >>> a.kept, a.skipped[0].reason
        ([0], 'empty answer')
        >>> model.tokenizer.convert_ids_to_tokens(a.answer_ids[0])
        ['lawyer']
    """
    from lens.tokens import TokenError, _bos_id, default_prepend_bos, tokens_after

    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise ValueError("this model has no tokenizer: answers given as text cannot be scored")
    bos_id = _bos_id(model)
    bos = [bos_id] if default_prepend_bos(model) and bos_id is not None else []
    vocab = int(model.cfg.d_vocab)
    out = Answers([], [], [], [])
    for i, (prompt, answer) in enumerate(zip(prompts, answers)):
        ids: list[int] = []
        if not answer.strip():
            reason: str | None = "empty answer"
        else:
            try:  # the answer as a word after the prompt: lens's token rule in context
                ids = tokens_after(model, prompt, " " + answer, what="answer")
                reason = _why_unusable(tok, ids)
            except TokenError:
                reason = "the prompt's tokens change when the answer follows it"
        if reason is None and max(ids) >= vocab:
            reason = f"an answer token id is outside the model's vocabulary (d_vocab {vocab})"
        if reason is not None:
            out.skipped.append(SkippedAnswer(i, prompt, answer, reason))
            continue
        out.kept.append(i)
        out.prompt_ids.append(bos + [int(t) for t in tok.encode(prompt, add_special_tokens=False)])
        out.answer_ids.append(ids)
    return out


@torch.no_grad()
def _teacher_forced(
    model: Any, items: Answers, interventions: Sequence[Any], shortcut: Any, batch_size: int
) -> AnswerScores:
    import lens

    hits, preds, logps = [], [], []
    for s in range(0, len(items), batch_size):
        chunk = slice(s, s + batch_size)
        rows = [p + a for p, a in zip(items.prompt_ids[chunk], items.answer_ids[chunk])]
        b = lens.tokens.batch(model, rows, padding_side="right")
        if shortcut is not None:
            logits = lens.shortcuts.predict(model, shortcut, b, positions="all")
        else:
            with lens.apply(model, *interventions):
                logits = model(b.tokens, attention_mask=b.attention_mask)
        logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        for r in range(len(rows)):
            n_p, ans = len(items.prompt_ids[s + r]), items.answer_ids[s + r]
            at = torch.arange(n_p - 1, n_p - 1 + len(ans))
            gold = torch.tensor(ans)
            hits.append(bool((logp[r, at].argmax(-1) == gold).all()))
            preds.append(int(logp[r, n_p - 1].argmax()))
            logps.append(float(logp[r, at, gold].sum()))
    return AnswerScores(torch.tensor(hits), torch.tensor(preds), torch.tensor(logps))


@torch.no_grad()
def score_answers(
    model: Any,
    items: Answers,
    *,
    interventions: Sequence[Any] = (),
    scoring: AnswerScoring = "first_token",
    shortcut: Any = None,
    batch_size: int = 16,
) -> AnswerScores:
    """Score the kept answers of ``items`` under ``interventions`` (or read out through a
    fitted ``lens`` linear ``shortcut`` instead of the later layers).

    Example:
        >>> import lens
        >>> model = lens.load_model("organism")
        >>> a = tokenize_answers(model, ["the job of alice is"], ["lawyer"])
        >>> s = score_answers(model, a)
        >>> bool(s.hit[0]) == (int(s.predicted[0]) == a.answer_ids[0][0])
        True
    """
    import lens

    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    if shortcut is not None and interventions:
        raise ValueError("give either interventions or a shortcut, not both")
    if len(items) == 0:
        empty = torch.zeros(0)
        return AnswerScores(empty.bool(), empty.long(), empty)
    if scoring == "teacher_forced":
        return _teacher_forced(model, items, interventions, shortcut, batch_size)
    if shortcut is None:
        logits = lens.readout.last_token_logits(
            model, items.prompt_ids, interventions=interventions, batch_size=batch_size
        )
    else:
        parts = []
        for s in range(0, len(items), batch_size):
            b = lens.tokens.batch(model, items.prompt_ids[s : s + batch_size], padding_side="left")
            parts.append(lens.shortcuts.predict(model, shortcut, b, positions="last"))
        logits = torch.cat(parts)
    logp = torch.log_softmax(logits.float(), dim=-1).cpu()
    gold = items.first_ids
    pred = logp.argmax(-1)
    return AnswerScores(pred == gold, pred, logp[torch.arange(len(gold)), gold])


def describe_scoring(scoring: AnswerScoring) -> str:
    """One sentence for a report saying how answers were scored."""
    exact = " Tokens must match exactly (case included: ' Euro' is not ' euro')."
    if scoring == "first_token":
        return (
            "Scoring `first_token`: an answer counts as given when the argmax of the "
            "next-token logits at the prompt's last token is the answer's first token." + exact
        )
    return (
        "Scoring `teacher_forced`: the answer is fed after the prompt and counts as given when "
        "every one of its tokens is the argmax at its position (the whole answer is the start "
        "of the greedy continuation)." + exact
    )


def skipped_summary(skipped: Sequence[SkippedAnswer], total: int) -> str:
    """A report line: how many pairs were skipped and why ("" when none were).

    Example:
        >>> skipped_summary([SkippedAnswer(3, "p", "", "empty answer")], 10)
        '1 of 10 prompts skipped (the model cannot express their answer): empty answer 1.'
    """
    if not skipped:
        return ""
    reasons = Counter(s.reason for s in skipped)
    why = "; ".join(f"{r} {n}" for r, n in reasons.most_common())
    return (
        f"{len(skipped)} of {total} prompts skipped (the model cannot express their answer): {why}."
    )
