"""``lens.tuned_lens.evaluate``: logit lens and tuned lens side by side on held-out text.

Per layer: KL(final distribution || readout) in bits and next-token cross-entropy in bits,
averaged over every real token (cross-entropy: every token that has a next one in its row),
plus the model's own cross-entropy. ``plot`` draws the tuned-lens paper's figure: layer on
x, KL in bits on y, one line per lens.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lens.tuned_lens import data
from lens.tuned_lens.readout import capture, chunk_rows, kl_per_token, readout_logprobs
from lens.tuned_lens.translators import TunedLens

LN2 = math.log(2.0)


@dataclass
class LensComparison:
    """Per-layer KL (bits) and cross-entropy (bits/token) of both lenses; ``model_ce_bits``
    is the model's own cross-entropy on the same tokens."""

    layers: list[int]
    logit_kl_bits: list[float]
    tuned_kl_bits: list[float]
    logit_ce_bits: list[float]
    tuned_ce_bits: list[float]
    model_ce_bits: float
    n_tokens: int

    def table(self) -> str:
        """A plain-text table, one line per layer."""
        lines = [
            f"{'layer':>5}  {'KL logit':>9} {'KL tuned':>9}  {'CE logit':>9} {'CE tuned':>9}",
        ]
        for i, layer in enumerate(self.layers):
            lines.append(
                f"{layer:>5}  {self.logit_kl_bits[i]:>9.4f} {self.tuned_kl_bits[i]:>9.4f}"
                f"  {self.logit_ce_bits[i]:>9.4f} {self.tuned_ce_bits[i]:>9.4f}"
            )
        lines.append(
            f"KL in bits, CE in bits/token; model CE {self.model_ce_bits:.4f}; "
            f"{self.n_tokens} tokens"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    def plot(self, path: str | Path | None = None, title: str | None = None) -> Any:
        """KL (bits) per layer, one line per lens; saved to ``path`` when given."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        ax.plot(self.layers, self.logit_kl_bits, "o-", label="logit lens")
        ax.plot(self.layers, self.tuned_kl_bits, "s-", label="tuned lens")
        ax.set_xlabel("layer")
        ax.set_ylabel("KL(final || lens) [bits]")
        ax.set_title(title or "KL to the model's final distribution")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        if path is None:
            return fig
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return Path(path)


@torch.no_grad()
def evaluate(
    model: Any,
    corpus: Iterable[Any],
    *,
    translator: TunedLens,
    max_length: int | None = None,
    tokens_per_batch: int = 2048,
    progress: bool = False,
) -> LensComparison:
    """Compare the logit lens and ``translator`` on one pass over ``corpus``.

    Args:
        model: the TransformerBridge the translators belong to.
        corpus: texts or token-id lists (read once, in order).
        translator: a :class:`TunedLens` for ``model``.
        max_length: longest row (default: the model's context, at most 512).
        tokens_per_batch: tokens per forward (about).
        progress: a tqdm bar.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> tl = lens.tuned_lens.TunedLens.identity(model)
        >>> res = lens.tuned_lens.evaluate(model, [[1, 2, 3, 4]], translator=tl)
        >>> res.logit_kl_bits == res.tuned_kl_bits, res.n_tokens
        (True, 4)
    """
    translator.check(model)
    layers, site = translator.layers, translator.site
    n_ctx = int(getattr(model.cfg, "n_ctx", 512) or 512)
    max_length = min(n_ctx, 512) if max_length is None else int(max_length)
    docs = list(corpus) if not isinstance(corpus, list) else corpus
    if not docs:
        raise ValueError("the corpus is empty: give at least one text or token-id list")
    n_tokens = sum(len(data._document_ids(model, d, i)) for i, d in enumerate(docs))
    size = min(tokens_per_batch, n_tokens)
    stream = data.steps(model, docs, size, max_length, seed=0)
    sums = np.zeros((4, len(layers)))
    model_ce, seen, n_ce = 0.0, 0, 0
    bar = tqdm(total=n_tokens, desc="evaluate", disable=not progress)
    while seen < n_tokens:
        rows = next(stream)
        rows = rows[: _rows_left(rows, n_tokens - seen)]
        tokens, mask = data.pad_rows(rows, next(model.parameters()).device)
        resid, target = capture(model, tokens, mask, layers, site)
        nxt, has_next = _next_tokens(tokens, mask)
        model_ce += float(-target.gather(1, nxt[:, None])[:, 0][has_next].sum())
        translated = translator.translate(resid, layers)
        chunk = chunk_rows(model)
        for i in range(len(layers)):
            for j, h in enumerate((resid[i], translated[i])):
                for s in range(0, h.shape[0], chunk):
                    logq = readout_logprobs(model, h[s : s + chunk])
                    sums[j, i] += float(kl_per_token(target[s : s + chunk], logq).sum())
                    pick = logq.gather(1, nxt[s : s + chunk, None])[:, 0]
                    sums[2 + j, i] += float(-pick[has_next[s : s + chunk]].sum())
        count = int(mask.sum())
        seen += count
        n_ce += int(has_next.sum())
        bar.update(count)
    bar.close()
    kl = sums[:2] / seen / LN2
    ce = sums[2:] / max(n_ce, 1) / LN2
    return LensComparison(
        layers=list(layers),
        logit_kl_bits=kl[0].tolist(),
        tuned_kl_bits=kl[1].tolist(),
        logit_ce_bits=ce[0].tolist(),
        tuned_ce_bits=ce[1].tolist(),
        model_ce_bits=model_ce / max(n_ce, 1) / LN2,
        n_tokens=seen,
    )


def _rows_left(rows: data.Rows, left: int) -> int:
    """How many leading rows fit in the ``left`` tokens of the pass not yet evaluated."""
    total = 0
    for k, r in enumerate(rows):
        total += len(r)
        if total >= left:
            return k + 1
    return len(rows)


def _next_tokens(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per real token (row-major): the next token id and whether it exists in the row."""
    nxt = torch.zeros_like(tokens)
    nxt[:, :-1] = tokens[:, 1:]
    has = torch.zeros_like(mask, dtype=torch.bool)
    has[:, :-1] = mask[:, 1:].bool()
    keep = mask.bool()
    return nxt[keep], has[keep]
