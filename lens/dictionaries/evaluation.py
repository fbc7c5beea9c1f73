"""``lens.dictionaries.evaluate``: the metrics SAELens reports, on held-out text.

Per batch three forwards: clean (its activations read by probes), with the dictionary spliced
in without its error term (``SpliceSAE(error=False)``) and with the site zero-ablated, both at
the same positions (every real token; BOS left alone when ``exclude_bos``).

* reconstruction (on the site the dictionary writes; for a transcoder the predicted site):
  L0, explained variance ``1 - SSE / total variance`` (FVU = its complement), the same without
  the first position of each row (an attention sink in many models, whose huge norm can
  dominate the variance), MSE per element, mean cosine between activation and reconstruction;
* downstream: next-token cross-entropy clean / spliced / zero-ablated, CE loss recovered
  ``(CE_zero - CE_splice) / (CE_zero - CE_clean)``, and mean KL(clean || spliced) and
  KL(clean || zero-ablated) per token;
* latents: firing density per latent, the dead (never fired) and dense (density >
  ``dense_threshold``) fractions and a histogram of log10 density.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interventions.dictionary import SAE
from interventions.dictionary_edits import SpliceSAE
from lens.dictionaries.encode import _chunks
from lens.hooks import Probe, apply
from lens.tokens import batch as make_batch

HIST_EDGES = [float(x) for x in range(-8, 1)]  # log10 density bins; dead latents counted apart


@dataclass
class Evaluation:
    """What :func:`evaluate` measured (``hook``: where the reconstruction was compared)."""

    hook: str
    n_tokens: int
    n_prompts: int
    l0: float
    explained_variance: float
    explained_variance_after_first: float
    fvu: float
    mse: float
    cosine: float
    ce_clean: float
    ce_splice: float
    ce_zero: float
    ce_loss_recovered: float
    kl_splice: float
    kl_zero: float
    dead_fraction: float
    dense_fraction: float
    density: Tensor = field(repr=False)
    density_histogram: list[int] = field(default_factory=list)
    histogram_edges: list[float] = field(default_factory=lambda: list(HIST_EDGES))
    exclude_bos: bool = True
    exclude_first: bool = False

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("density")
        return out

    def table(self) -> str:
        """The headline numbers as a Markdown table."""
        rows = [
            ("L0", self.l0),
            ("explained variance", self.explained_variance),
            ("explained variance, first position excluded", self.explained_variance_after_first),
            ("FVU", self.fvu),
            ("MSE", self.mse),
            ("cosine", self.cosine),
            ("CE clean (nats)", self.ce_clean),
            ("CE spliced", self.ce_splice),
            ("CE zero-ablated", self.ce_zero),
            ("CE loss recovered", self.ce_loss_recovered),
            ("KL(clean || spliced)", self.kl_splice),
            ("KL(clean || zero)", self.kl_zero),
            ("dead fraction", self.dead_fraction),
            ("dense fraction", self.dense_fraction),
        ]
        lines = ["| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in rows]
        return (
            "\n".join(lines) + f"\n\n{self.n_tokens} tokens, {self.n_prompts} prompts, {self.hook}"
        )


class _ZeroAt:
    def __init__(self, hook: str, mask: Tensor) -> None:
        self.hook, self.mask = hook, mask

    def hooks(self, model: Any) -> list[tuple[str, Any]]:
        def zero(act: Tensor, hook: Any) -> Tensor:
            m = self.mask.to(act.device).view(*self.mask.shape, *([1] * (act.ndim - 2)))
            return torch.where(m, torch.zeros_like(act), act)

        return [(self.hook, zero)]


def _ce_kl(logits: Tensor, clean: Tensor, tokens: Tensor, valid: Tensor) -> tuple[float, float]:
    """Summed next-token CE and KL(clean || logits) over positions ``valid`` [b, p-1]."""
    logp = torch.log_softmax(logits[:, :-1].double(), -1)
    ref = torch.log_softmax(clean[:, :-1].double(), -1)
    ce = -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)
    kl = (ref.exp() * (ref - logp)).sum(-1)
    return float(ce[valid].sum()), float(kl[valid].sum())


@torch.no_grad()
def evaluate(
    model: Any,
    sae: SAE,
    prompts: Iterable[Any],
    *,
    batch_size: int = 8,
    exclude_bos: bool = True,
    exclude_first: bool = False,
    dense_threshold: float = 0.1,
    progress: bool = False,
    prepend_bos: bool | None = None,
) -> Evaluation:
    """Score ``sae`` on ``model`` over ``prompts`` (texts or token-id lists; streamed).

    ``exclude_bos`` leaves a BOS token out of every metric and unspliced; ``exclude_first``
    does so for the first position of every row whatever its token (for a dictionary trained
    with ``train(exclude_first=True)``).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> sae = lens.dictionaries.random_sae(model, site="resid_post", layer=1,
        ...                                    n_latents=64, k=4)
        >>> ev = evaluate(model, sae, [[1, 2, 3, 4], [5, 6, 7]])
        >>> ev.n_tokens, ev.l0 <= 4, 0.0 <= ev.dead_fraction <= 1.0
        (7, True, True)
    """
    sae.check(model)
    bos = getattr(getattr(model, "tokenizer", None), "bos_token_id", None)
    d = sae.d_in
    n = 0
    sse = y_sq = cos_sum = l0_sum = 0.0
    y_sum = torch.zeros(d, dtype=torch.float64)
    n1, sse1, y_sq1 = 0, 0.0, 0.0  # the same sums without the first position of each row
    y_sum1 = torch.zeros(d, dtype=torch.float64)
    fired = torch.zeros(sae.d_sae, dtype=torch.long)
    ce = {"clean": 0.0, "splice": 0.0, "zero": 0.0}
    kl = {"splice": 0.0, "zero": 0.0}
    n_pred = n_prompts = 0
    bar = tqdm(desc="evaluate", unit="batch", disable=not progress)
    for chunk in _chunks(prompts, batch_size):
        b = make_batch(model, chunk, padding_side="right", prepend_bos=prepend_bos)
        mask = b.attention_mask.bool()
        where = mask.clone()
        if exclude_first:
            where[:, 0] = False
        elif exclude_bos and bos is not None:
            where[:, 0] &= b.tokens[:, 0] != bos
        probes = [Probe(sae.in_hook)] + (
            [Probe(sae.out_hook)] if sae.out_hook != sae.in_hook else []
        )
        with apply(model, probes=probes):
            clean = model(b.tokens, attention_mask=b.attention_mask)
        x_in = probes[0].value
        y = probes[-1].value
        if x_in.ndim == 4:
            x_in, y = x_in.flatten(-2), y.flatten(-2)
        feats = sae.encode(x_in[where])
        recon = sae.decode(feats, x_in[where]).double()
        yt = y[where].double()
        n += yt.shape[0]
        sse += float((yt - recon).pow(2).sum())
        y_sq += float(yt.pow(2).sum())
        y_sum += yt.sum(0)
        cos_sum += float(torch.nn.functional.cosine_similarity(yt, recon, dim=-1).sum())
        after = torch.arange(where.shape[1], device=where.device)[None].expand_as(where)[where] > 0
        yl = yt[after]
        n1 += yl.shape[0]
        sse1 += float((yl - recon[after]).pow(2).sum())
        y_sq1 += float(yl.pow(2).sum())
        y_sum1 += yl.sum(0)
        active = feats > 0
        l0_sum += float(active.sum())
        fired += active.sum(0)
        valid = mask[:, 1:] & mask[:, :-1]
        with apply(model, SpliceSAE(sae, error=False, positions=where)):
            spliced = model(b.tokens, attention_mask=b.attention_mask)
        with apply(model, _ZeroAt(sae.out_hook, where)):
            zeroed = model(b.tokens, attention_mask=b.attention_mask)
        ce["clean"] += _ce_kl(clean, clean, b.tokens, valid)[0]
        for name, logits in (("splice", spliced), ("zero", zeroed)):
            c, k = _ce_kl(logits, clean, b.tokens, valid)
            ce[name] += c
            kl[name] += k
        n_pred += int(valid.sum())
        n_prompts += len(chunk)
        bar.update(1)
    bar.close()
    if n == 0:
        raise ValueError("no tokens to evaluate on: give non-empty prompts")
    total_var = y_sq - float(y_sum.pow(2).sum()) / n
    ev = 1.0 - sse / total_var if total_var > 0 else float("nan")
    var1 = y_sq1 - float(y_sum1.pow(2).sum()) / max(n1, 1)
    ev_later = 1.0 - sse1 / var1 if n1 and var1 > 0 else float("nan")
    per = {k: v / max(n_pred, 1) for k, v in ce.items()}
    gap = per["zero"] - per["clean"]
    density = fired.double() / n
    logd = torch.log10(density[density > 0])
    hist = torch.histogram(
        logd.clamp(HIST_EDGES[0], HIST_EDGES[-1]).float(), bins=torch.tensor(HIST_EDGES)
    ).hist
    return Evaluation(
        hook=sae.out_hook,
        n_tokens=n,
        n_prompts=n_prompts,
        l0=l0_sum / n,
        explained_variance=ev,
        explained_variance_after_first=ev_later,
        fvu=1.0 - ev,
        mse=sse / (n * d),
        cosine=cos_sum / n,
        ce_clean=per["clean"],
        ce_splice=per["splice"],
        ce_zero=per["zero"],
        ce_loss_recovered=(per["zero"] - per["splice"]) / gap if gap != 0 else math.nan,
        kl_splice=kl["splice"] / max(n_pred, 1),
        kl_zero=kl["zero"] / max(n_pred, 1),
        dead_fraction=float((fired == 0).float().mean()),
        dense_fraction=float((density > dense_threshold).float().mean()),
        density=density.float(),
        density_histogram=[int(v) for v in hist.tolist()],
        exclude_bos=exclude_bos,
        exclude_first=exclude_first,
    )
