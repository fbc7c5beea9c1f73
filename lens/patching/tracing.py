"""Causal tracing (Meng et al. 2022): corrupt the subject's token embeddings with Gaussian
noise, then restore one clean hidden state (or a window of MLP / attention outputs) at a time
and measure how much of the answer's probability comes back.

The noise scale is ``noise`` times the standard deviation of the prompts' own token
embeddings (all real tokens, all dimensions); each sample draws fresh noise from ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from lens.hooks import Probe, apply
from lens.patching.exact import run_cells, source_values
from lens.patching.pairs import Pairs
from lens.tokens import Batch, batch, token_ids

Kind = Literal["resid", "mlp", "attn"]
KIND_SITES = {"resid": "resid_post", "mlp": "mlp_out", "attn": "attn_out"}
ROLES = ("first subject", "middle subject", "last subject", "first after", "further", "last")


@dataclass(eq=False)
class SubjectNoise:
    """Private intervention: add ``noise`` ``[pairs, pos, d_model]`` to the token embeddings of
    a copy-major batch (row r gets the noise of prompt r % pairs)."""

    noise: Tensor

    def hooks(self, model: Any) -> list[tuple[str, Any]]:
        def add(act: Tensor, hook: Any) -> Tensor:
            reps = act.shape[0] // self.noise.shape[0]
            return act + self.noise.repeat(reps, 1, 1).to(act.device, act.dtype)

        return [("hook_embed", add)]


class AnswerProbability:
    """Metric: probability of each prompt's answer at its last real token."""

    last_token_only = True

    def __init__(self, answer: Tensor) -> None:
        self.answer = answer

    def __call__(self, logits: Tensor, b: Batch) -> Tensor:
        reps = logits.shape[0] // self.answer.shape[0]
        rows = torch.arange(logits.shape[0], device=logits.device)
        probs = logits[rows, b.last_positions.to(logits.device)].float().softmax(-1)
        return probs[rows, self.answer.repeat(reps).to(logits.device)]


@dataclass
class TraceResult:
    """Answer probabilities of causal tracing.

    Attributes:
        restored: kind -> ``[prompt, layer, position]`` probability with that state restored
            (mean over noise samples); positions index the left-padded batch.
        clean_prob, corrupt_prob: ``[prompt]`` (corrupt: mean over samples).
        subject: ``[prompt, position]`` bool, the noised positions; mask: real tokens.
    """

    restored: dict[str, Tensor]
    clean_prob: Tensor
    corrupt_prob: Tensor
    subject: Tensor
    mask: Tensor
    window: int

    def indirect_effect(self, kind: str) -> Float[Tensor, "prompt layer position"]:
        """Restored probability minus the corrupted one."""
        return self.restored[kind] - self.corrupt_prob[:, None, None]

    def roles(self) -> Tensor:
        """``[prompt, position]`` index into :data:`ROLES` (-1 for padding)."""
        out = torch.full(self.mask.shape, 4, dtype=torch.long)
        out[~self.mask.bool()] = -1
        for i in range(self.mask.shape[0]):
            subj = self.subject[i].nonzero().flatten().tolist()
            first, last = subj[0], subj[-1]
            out[i, first : last + 1] = 1
            out[i, first], out[i, last] = 0, 2
            if last + 1 < out.shape[1]:
                out[i, last + 1] = 3
            out[i, int(self.mask[i].nonzero().max())] = 5
        return out

    def by_role(self, kind: str) -> Float[Tensor, "layer role"]:
        """Mean indirect effect per layer and token role (NaN where no prompt has the role)."""
        effect, roles = self.indirect_effect(kind), self.roles()
        out = torch.full((effect.shape[1], len(ROLES)), float("nan"), dtype=torch.float64)
        for r in range(len(ROLES)):
            where = roles == r
            if where.any():
                out[:, r] = effect.permute(1, 0, 2)[:, where].double().mean(-1)
        return out


def _noise(embed: Tensor, subject: Tensor, scale: float, gen: torch.Generator) -> Tensor:
    noise = torch.randn(embed.shape, generator=gen, dtype=torch.float32) * scale
    return noise * subject[..., None]


def causal_trace(
    model: Any,
    prompts: Sequence[str] | Batch,
    subjects: Sequence[str | Sequence[int]],
    answer: Any = None,
    *,
    kinds: Sequence[Kind] = ("resid", "mlp", "attn"),
    window: int = 10,
    noise: float = 3.0,
    samples: int = 10,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> TraceResult:
    """Trace where the answer's information flows from the subject tokens.

    Args:
        model: a TransformerBridge.
        prompts: texts (left-padded together) or a Batch.
        subjects: per prompt, the subject substring or its positions in the padded batch.
        answer: one token (id or single-token string) per prompt or for all; None = each
            clean run's own top token.
        kinds: ``"resid"`` restores one layer's hidden state (block output); ``"mlp"`` and
            ``"attn"`` restore ``window`` consecutive layers' outputs centred on the layer.
        noise: noise std in units of the prompts' embedding std; samples, seed: draws.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> res = causal_trace(model, [[1, 2, 3, 4]], [[1, 2]], answer=5, samples=2,
        ...                    kinds=["resid"], progress=False)
        >>> tuple(res.indirect_effect("resid").shape)
        (1, 3, 4)
    """
    b = prompts if isinstance(prompts, Batch) else batch(model, prompts, padding_side="left")
    b.to(getattr(model.cfg, "device", None) or "cpu")
    n, seq, n_layers = len(b), b.tokens.shape[1], int(model.cfg.n_layers)
    if len(subjects) != n:
        raise ValueError(f"{len(subjects)} subjects for {n} prompts")
    subject = torch.zeros(n, seq, dtype=torch.bool)
    for i, s in enumerate(subjects):
        pos = b.span(i, s) if isinstance(s, str) else list(s)
        if not pos or not all(0 <= p < seq and b.attention_mask[i, p] for p in pos):
            raise ValueError(f"prompt {i}: subject positions {pos} are not real tokens")
        subject[i, pos] = True
    bad = [k for k in kinds if k not in KIND_SITES]
    if bad or not kinds:
        raise ValueError(f"unknown kinds {bad}; choose from {list(KIND_SITES)}")
    embed = Probe("hook_embed")
    with torch.no_grad(), apply(model, probes=[embed]):
        clean_logits = model(b.tokens, attention_mask=b.attention_mask)
    if answer is None:
        last = clean_logits[torch.arange(n), b.last_positions]
        answer_ids = last.argmax(-1).cpu()
    else:
        answer_ids = token_ids(model, answer, n=n, what="answer")
    metric = AnswerProbability(answer_ids)
    real = embed.value[b.attention_mask.bool()]
    scale = noise * float(real.float().std())
    sites = [KIND_SITES[k] for k in kinds]
    source, _ = source_values(model, b, sites, list(range(n_layers)), ())
    slots = torch.arange(seq)[:, None].expand(seq, n).clone()
    pairs = Pairs(b, b, metric, slots, [str(p) for p in range(seq)])
    copies = []
    for kind in kinds:
        site = KIND_SITES[kind]
        for layer in range(n_layers):
            if kind == "resid":
                span = [layer]
            else:
                lo = max(0, min(layer - window // 2, n_layers - window))
                span = list(range(lo, min(n_layers, lo + window)))
            for p in range(seq):
                copies.append([(site, li, p, -1) for li in span])
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(len(copies), n, dtype=torch.float64)
    corrupt = torch.zeros(n, dtype=torch.float64)
    for _ in range(samples):
        draw = SubjectNoise(_noise(embed.value.cpu(), subject, scale, gen))
        with torch.no_grad(), apply(model, draw):
            logits = model(b.tokens, attention_mask=b.attention_mask)
        corrupt += metric(logits, b).double().cpu()
        total += run_cells(model, pairs, copies, source, b, batch_size, [draw], progress)
    total, corrupt = total / samples, corrupt / samples
    restored: dict[str, Tensor] = {
        kind: total[i * n_layers * seq : (i + 1) * n_layers * seq].T.reshape(n, n_layers, seq)
        for i, kind in enumerate(kinds)
    }
    clean = metric(clean_logits, b).double().cpu()
    return TraceResult(restored, clean, corrupt, subject, b.attention_mask.cpu(), window)
