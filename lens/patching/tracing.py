"""Causal tracing (Meng et al. 2022, ROME): corrupt the subject's token embeddings with
Gaussian noise, then restore one clean hidden state (or a window of MLP / attention outputs)
at a time and measure how much of the answer's probability comes back.

As in ROME: windows are clipped at the model's edges (:func:`window_layers`); the noise for
each prompt is ``torch.randn(samples, subject_tokens, d_model)`` from a generator seeded with
``seed`` (the same draws for every prompt and every cell, so results do not depend on which
prompts are traced together), times sigma. Sigma is ``noise`` times either the std of the
prompts' own token embeddings or, with ``noise_from``, the std of the token embeddings of a
list of subject strings (ROME's recipe: 3 x the std over its corpus of subjects).

Each prompt runs alone (no padding); cells that cannot change the answer (before the first
subject token, or last-layer states away from the last token) are filled with the noised
run's value instead of being run (``TraceResult.skipped``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from tqdm.auto import tqdm

from interventions.sites import hook_name
from lens.hooks import Probe, apply
from lens.inputs import rows_per_forward
from lens.patching.trace_cells import KIND_SITES, restored_layers, trace_prompt, trivial
from lens.patching.trace_cells import window_layers as window_layers
from lens.tokens import Batch, batch, token_ids

Kind = Literal["resid", "mlp", "attn"]
NoiseSource = Literal["prompts", "subjects"]
ROLES = ("first subject", "middle subject", "last subject", "first after", "further", "last")


@dataclass
class TraceResult:
    """Answer probabilities of causal tracing.

    Attributes:
        restored: kind -> ``[prompt, layer, position]`` probability with that state restored
            (mean over noise samples); positions index the (left-)padded batch; cells that
            cannot change the answer, and padding, hold the noised probability.
        clean_prob, corrupt_prob: ``[prompt]`` (corrupt: mean over samples).
        subject: ``[prompt, position]`` bool, the noised positions; mask: real tokens.
        window: layers restored together for ``"mlp"`` / ``"attn"`` (clipped at the edges).
        noise: the multiplier; noise_from: whose embedding std it multiplies (``"prompts"``
            or ``"subjects"``, ROME's recipe); sigma: the noise std used; noise_tokens: how
            many token embeddings that std was taken over.
        skipped: kind -> ``[prompt, layer, position]`` bool, cells filled without running.
    """

    restored: dict[str, Tensor]
    clean_prob: Tensor
    corrupt_prob: Tensor
    subject: Tensor
    mask: Tensor
    window: int
    noise: float = 3.0
    noise_from: NoiseSource = "prompts"
    sigma: float = float("nan")
    noise_tokens: int = 0
    skipped: dict[str, Tensor] | None = None

    def indirect_effect(self, kind: str) -> Float[Tensor, "prompt layer position"]:
        """Restored probability minus the corrupted one."""
        return self.restored[kind] - self.corrupt_prob[:, None, None]

    def noise_rule(self) -> str:
        """How sigma was set, in words (for reports)."""
        whose = (
            "the token embeddings of the noise_from subject strings (ROME's recipe)"
            if self.noise_from == "subjects"
            else "the prompts' own token embeddings"
        )
        return (
            f"sigma = {self.sigma:.4g} = {self.noise:g} x the std of {whose} "
            f"({self.noise_tokens} tokens)"
        )

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


def embedding_std(model: Any, texts: Sequence[str | Sequence[int]]) -> tuple[float, int]:
    """Std over every element of the token embeddings (``hook_embed``) of ``texts``, each
    tokenized alone without special tokens (ROME's ``collect_embedding_std``), and the number
    of tokens it covers.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> std, n = embedding_std(model, [[3, 4], [5]])
        >>> n, abs(std - float(model.W_E[[3, 4, 5]].std())) < 1e-6
        (3, True)
    """
    rows: list[list[int]] = []
    for t in texts:
        if isinstance(t, str):
            if getattr(model, "tokenizer", None) is None:
                raise ValueError("this model has no tokenizer: give noise_from as token ids")
            rows.append(list(model.tokenizer(t, add_special_tokens=False)["input_ids"]))
        else:
            rows.append([int(i) for i in t])
    rows = [r for r in rows if r]
    if not rows:
        raise ValueError("noise_from: no subject has any token")
    parts = []
    for start in range(0, len(rows), 64):
        b = batch(model, rows[start : start + 64])
        probe = Probe("hook_embed")
        with torch.no_grad(), apply(model, probes=[probe]):
            model(b.tokens, attention_mask=b.attention_mask)
        parts.append(probe.value[b.attention_mask.bool()].float().cpu())
    values = torch.cat(parts)
    return float(values.std()), int(values.shape[0])


def subject_mask(b: Batch, subjects: Sequence[str | Sequence[int]]) -> Bool[Tensor, "b pos"]:
    """``[prompt, position]`` True at each prompt's subject tokens (a substring, or positions in
    the padded batch); raises unless every subject covers real tokens."""
    n, seq = b.tokens.shape
    if len(subjects) != n:
        raise ValueError(f"{len(subjects)} subjects for {n} prompts")
    out = torch.zeros(n, seq, dtype=torch.bool)
    for i, s in enumerate(subjects):
        pos = b.span(i, s) if isinstance(s, str) else list(s)
        if not pos or not all(0 <= p < seq and b.attention_mask[i, p] for p in pos):
            raise ValueError(f"prompt {i}: subject positions {pos} are not real tokens")
        out[i, pos] = True
    return out


def clean_runs(
    model: Any, rows: list[Tensor], sites: list[str]
) -> list[tuple[dict[tuple[str, int], Tensor], Tensor, Tensor]]:
    """Per unpadded prompt ``[1, pos]``: its clean values per (site, layer) ``[pos, d_model]``,
    its token embeddings and its last-position logits."""
    out = []
    n_layers = int(model.cfg.n_layers)
    for tokens in rows:
        probes = {(s, i): Probe(hook_name(s, i)) for s in sites for i in range(n_layers)}
        embed = Probe("hook_embed")
        with torch.no_grad(), apply(model, probes=[embed, *probes.values()]):
            logits = model(tokens)
        values = {key: p.value[0] for key, p in probes.items()}
        out.append((values, embed.value[0], logits[0, -1]))
    return out


def causal_trace(
    model: Any,
    prompts: Sequence[str] | Sequence[Sequence[int]] | Batch,
    subjects: Sequence[str | Sequence[int]],
    *,
    answer: Any = None,
    kinds: Sequence[Kind] = ("resid", "mlp", "attn"),
    window: int = 10,
    noise: float = 3.0,
    noise_from: Sequence[str | Sequence[int]] | None = None,
    samples: int = 10,
    seed: int = 0,
    batch_size: int = 128,
    compute_all: bool = False,
    progress: bool = False,
) -> TraceResult:
    """Trace where the answer's information flows from the subject tokens.

    Args:
        model: a TransformerBridge.
        prompts: texts or token-id lists (left-padded together in the result) or a Batch.
        subjects: per prompt, the subject substring or its positions in the padded batch.
        answer: one token (id or single-token string) per prompt or for all; None = each
            clean run's own top token.
        kinds: ``"resid"`` restores one layer's hidden state (block output); ``"mlp"`` and
            ``"attn"`` restore the outputs of ``window`` layers centred on the layer, clipped
            at the first and last layer as in ROME (:func:`window_layers`).
        noise: sigma in units of an embedding std: the prompts' own token embeddings, or
            with ``noise_from`` (subject strings or token-id lists) theirs (ROME: 3 x the std
            over its corpus of subjects).
        samples, seed: noise draws (``torch.randn(samples, subject_tokens, d_model)`` per
            prompt from a generator seeded with ``seed``).
        batch_size: rows per forward (one noised run and ``batch_size - 1`` restored cells).
        compute_all: also run the cells that cannot change the answer (to check them).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> res = causal_trace(model, [[1, 2, 3, 4]], [[1, 2]], answer=5, samples=2,
        ...                    kinds=["resid"], progress=False)
        >>> tuple(res.indirect_effect("resid").shape), bool(res.skipped["resid"][0, 0, 0])
        ((1, 3, 4), True)
    """
    b = prompts if isinstance(prompts, Batch) else batch(model, prompts, padding_side="left")
    device = getattr(model.cfg, "device", None) or "cpu"
    n, seq, n_layers = len(b), b.tokens.shape[1], int(model.cfg.n_layers)
    subject = subject_mask(b, subjects)
    names: list[str] = list(kinds)
    bad = [k for k in names if k not in KIND_SITES]
    if bad or not kinds:
        raise ValueError(f"unknown kinds {bad}; choose from {list(KIND_SITES)}")
    if window < 1 or samples < 1 or batch_size < 1:
        got = f"window={window}, samples={samples}, batch_size={batch_size}"
        raise ValueError(f"window, samples and batch_size must be >= 1 (got {got})")
    mask = b.attention_mask.bool().cpu()
    cols = [mask[i].nonzero().flatten() for i in range(n)]  # real columns, in order
    rows = [b.tokens[i, cols[i].to(b.tokens.device)][None].to(device) for i in range(n)]
    clean = clean_runs(model, rows, [KIND_SITES[k] for k in names])
    last_logits = torch.stack([c[2] for c in clean])
    answer_ids = (
        last_logits.argmax(-1).cpu()
        if answer is None
        else token_ids(model, answer, n=n, what="answer")
    )
    if noise_from is None:
        embeds = torch.cat([c[1].float().cpu() for c in clean])
        std, noise_tokens = float(embeds.std()), int(embeds.shape[0])
    else:
        std, noise_tokens = embedding_std(model, noise_from)
    sigma = noise * std
    cells = [
        [
            ((kind, layer, p), restored_layers(kind, layer, window, n_layers))
            for kind in names
            for layer in range(n_layers)
            for p in range(len(cols[i]))
        ]
        for i in range(n)
    ]
    subj_pos = [subject[i, cols[i]].nonzero().flatten() for i in range(n)]  # unpadded positions
    run = [
        [
            c
            for c in cells[i]
            if compute_all
            or not trivial(c[1], c[0][2], int(subj_pos[i][0]), len(cols[i]), n_layers)
        ]
        for i in range(n)
    ]
    fits = rows_per_forward(model, seq, rows=batch_size, n_pairs=1, what="causal trace")
    per = max(1, fits - 1)  # one noised row + copies per forward, under the memory bound
    bar = tqdm(
        total=samples * sum(max(1, -(-len(r) // per)) for r in run),
        desc="causal tracing",
        disable=not progress,
    )
    restored = {k: torch.empty(n, n_layers, seq, dtype=torch.float64) for k in names}
    skipped = {k: torch.ones(n, n_layers, seq, dtype=torch.bool) for k in names}
    corrupt = torch.empty(n, dtype=torch.float64)
    for i in range(n):
        gen = torch.Generator().manual_seed(seed)
        d_model = clean[i][1].shape[-1]
        draws = torch.randn(samples, len(subj_pos[i]), d_model, generator=gen)
        full = torch.zeros(samples, len(cols[i]), d_model)
        full[:, subj_pos[i]] = draws * sigma
        probs, noised = trace_prompt(
            model, rows[i], full, run[i], clean[i][0], int(answer_ids[i]),
            batch_size=batch_size, step=lambda: bar.update(1),
        )  # fmt: skip
        corrupt[i] = noised.mean()
        for kind in names:
            restored[kind][i] = corrupt[i]
        for ((kind, layer, p), _), value in zip(run[i], probs.mean(-1)):
            col = int(cols[i][p])
            restored[kind][i, layer, col] = value
            skipped[kind][i, layer, col] = False
    bar.close()
    clean_prob = last_logits.float().softmax(-1)[torch.arange(n), answer_ids.to(last_logits.device)]
    return TraceResult(
        restored, clean_prob.double().cpu(), corrupt, subject, b.attention_mask.cpu(), window,
        noise=noise, noise_from="prompts" if noise_from is None else "subjects", sigma=sigma,
        noise_tokens=noise_tokens, skipped=skipped,
    )  # fmt: skip
