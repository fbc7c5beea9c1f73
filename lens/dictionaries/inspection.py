"""Inspecting dictionary features: top-activating contexts, activation histogram, the logit
effects of a decoder row, a PNG feature card, and a search for features that separate known
properties of text (language, code, harmful requests) by AUROC.

:class:`FeatureCard` is plain data (JSON via :meth:`FeatureCard.to_json`), so any renderer
(the PNG here, an HTML report) can draw it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from interventions import bridge
from interventions.dictionary import SAE
from lens.dictionaries.encode import encode

HIST_BINS = 20


@dataclass
class Context:
    """A window of tokens around one token where the feature fired strongly: ``tokens[i]``
    has activation ``acts[i]``; ``peak`` is the index of the strongest one."""

    prompt_index: int
    tokens: list[str]
    acts: list[float]
    peak: int
    max_act: float


@dataclass
class FeatureCard:
    """Everything a card shows about one feature (plain data)."""

    feature: int
    hook: str
    contexts: list[Context]
    histogram: list[int]
    histogram_edges: list[float]
    density: float
    n_tokens: int
    top_positive: list[tuple[str, float]] = field(default_factory=list)
    top_negative: list[tuple[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def html_card(self) -> dict[str, Any]:
        """This card in the input shape of :func:`lens.html.features.feature_cards_view`."""
        return {
            "id": self.feature,
            "title": f"feature {self.feature} at {self.hook}",
            "contexts": [
                {"tokens": c.tokens, "acts": c.acts, "label": f"prompt {c.prompt_index}"}
                for c in self.contexts
            ],
            "histogram": {"edges": self.histogram_edges, "counts": self.histogram},
            "logits": {"positive": self.top_positive, "negative": self.top_negative},
            "stats": {"density": self.density, "tokens read": self.n_tokens},
        }


def _token_str(model: Any, token: int) -> str:
    tok = getattr(model, "tokenizer", None)
    return tok.decode([token]) if tok is not None else f"<{token}>"


@torch.no_grad()
def logit_effects(model: Any, sae: SAE, feature: int, *, top: int = 10) -> tuple[list, list]:
    """Tokens whose logits the decoder row of ``feature`` raises and lowers most, read
    through the final norm's scale and the unembedding (direct path only).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("gpt2"))
        >>> sae = lens.dictionaries.random_sae(model, site="resid_post", layer=2,
        ...                                    n_latents=16, k=2)
        >>> up, down = logit_effects(model, sae, 3, top=2)
        >>> len(up), up[0][1] > down[0][1]
        (2, True)
    """
    if not 0 <= feature < sae.d_sae:
        raise ValueError(f"feature {feature} does not exist; latents are 0..{sae.d_sae - 1}")
    if sae.d_in != int(model.cfg.d_model):
        raise ValueError("logit effects need a dictionary that writes d_model vectors")
    w_u, _ = bridge.unembed(model)
    direction = sae.W_dec[feature].to(w_u.device, w_u.dtype)
    scale = bridge.final_norm(model).weight
    if scale is not None:
        direction = direction * scale.to(direction)
    effects = (direction @ w_u).float().cpu()
    up = torch.topk(effects, min(top, effects.numel()))
    down = torch.topk(-effects, min(top, effects.numel()))
    return (
        [(_token_str(model, int(i)), float(v)) for v, i in zip(up.values, up.indices)],
        [(_token_str(model, int(i)), float(-v)) for v, i in zip(down.values, down.indices)],
    )


def feature_card(
    model: Any,
    sae: SAE,
    feature: int,
    prompts: Iterable[Any],
    *,
    top: int = 8,
    window: int = 12,
    batch_size: int = 8,
) -> FeatureCard:
    """Top contexts (the ``top`` strongest firings, one per prompt, ``window`` tokens before
    the peak and 3 after), a histogram of its non-zero activations, its firing density and
    its logit effects, from ``prompts`` streamed through :func:`lens.dictionaries.encode`.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> sae = lens.dictionaries.random_sae(model, site="resid_post", layer=1,
        ...                                    n_latents=8, k=4)
        >>> card = feature_card(model, sae, 0, [[1, 2, 3, 4], [5, 6, 7]], top=1)
        >>> card.n_tokens, len(card.contexts) <= 1
        (7, True)
    """
    return feature_cards(
        model, sae, [feature], prompts, top=top, window=window, batch_size=batch_size
    )[0]


def feature_cards(
    model: Any,
    sae: SAE,
    features: list[int],
    prompts: Iterable[Any],
    *,
    top: int = 8,
    window: int = 12,
    batch_size: int = 8,
) -> list[FeatureCard]:
    """:func:`feature_card` for several features from one pass over ``prompts``."""
    for feature in features:
        if not 0 <= feature < sae.d_sae:
            raise ValueError(f"feature {feature} does not exist; latents are 0..{sae.d_sae - 1}")
    heaps: list[list[tuple[float, int, Context]]] = [[] for _ in features]
    values: list[list[Tensor]] = [[] for _ in features]
    n = 0
    for item in encode(model, sae, prompts, batch_size=batch_size):
        n += item.acts.shape[0]
        words: list[str] | None = None
        for slot, feature in enumerate(features):
            a = item.acts[:, feature]
            values[slot].append(a[a > 0])
            peak = int(a.argmax())
            best = float(a[peak])
            heap = heaps[slot]
            if best <= 0 or (len(heap) == top and best <= heap[0][0]):
                continue
            if words is None:
                words = [_token_str(model, int(t)) for t in item.tokens]
            lo, hi = max(0, peak - window), min(a.numel(), peak + 4)
            ctx = Context(
                item.index, words[lo:hi], [round(float(v), 5) for v in a[lo:hi]], peak - lo, best
            )
            entry = (best, -item.index, ctx)
            if len(heap) < top:
                heapq.heappush(heap, entry)
            else:
                heapq.heapreplace(heap, entry)
    cards = []
    for slot, feature in enumerate(features):
        fired = torch.cat(values[slot]) if values[slot] else torch.zeros(0)
        hi_edge = float(fired.max()) if fired.numel() else 1.0
        edges = torch.linspace(0.0, hi_edge, HIST_BINS + 1)
        hist = (
            torch.histc(fired, bins=HIST_BINS, min=0.0, max=hi_edge)
            if fired.numel()
            else torch.zeros(HIST_BINS)
        )
        writes_stream = sae.d_in == int(model.cfg.d_model)
        up, down = logit_effects(model, sae, feature) if writes_stream else ([], [])
        cards.append(
            FeatureCard(
                feature,
                sae.in_hook,
                [c for _, _, c in sorted(heaps[slot], reverse=True)],
                [int(v) for v in hist.tolist()],
                [round(float(e), 6) for e in edges],
                fired.numel() / max(n, 1),
                n,
                up,
                down,
            )
        )
    return cards


def plot_card(card: FeatureCard, path: str | Path) -> Path:
    """Draw ``card`` as a PNG: contexts (token background = activation), histogram, and the
    top +/- logit tokens."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig = plt.figure(figsize=(11, 7.5))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.3, 1])
    ax = fig.add_subplot(grid[0, :])
    ax.set_axis_off()
    ax.set_title(
        f"feature {card.feature} at {card.hook}  (density {card.density:.4f}, "
        f"{card.n_tokens} tokens)",
        loc="left",
        fontsize=11,
    )
    top = max((c.max_act for c in card.contexts), default=1.0) or 1.0
    for row, ctx in enumerate(card.contexts[:8]):
        y, x = 1 - (row + 0.7) / 8.5, 0.0
        for tok, act in zip(ctx.tokens, ctx.acts):
            text = tok.replace("\n", "\\n").replace("$", r"\$") or " "
            t = ax.text(
                x,
                y,
                text,
                fontsize=8,
                family="monospace",
                transform=ax.transAxes,
                bbox={
                    "facecolor": (1, 0.45, 0, min(1.0, max(act, 0) / top)),
                    "edgecolor": "none",
                    "pad": 1,
                },
            )
            x += 0.0085 * max(len(text), 1) + 0.004
            if x > 0.97:
                t.set_text("…")
                break
        ax.text(0.985, y, f"{ctx.max_act:.2f}", fontsize=8, transform=ax.transAxes, ha="right")
    hx = fig.add_subplot(grid[1, 0])
    edges = card.histogram_edges
    hx.bar(edges[:-1], card.histogram, width=(edges[1] - edges[0]) or 1.0, align="edge")
    hx.set_title("non-zero activations", fontsize=10)
    lx = fig.add_subplot(grid[1, 1])
    items = card.top_positive[:8] + card.top_negative[:8][::-1]
    lx.barh(
        range(len(items)),
        [v for _, v in items],
        color=["tab:green"] * len(card.top_positive[:8]) + ["tab:red"] * len(items[8:]),
    )
    lx.set_yticks(range(len(items)), [repr(t) for t, _ in items], fontsize=7)
    lx.invert_yaxis()
    lx.set_title("logit effect of the decoder row", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def auroc(pos: Tensor, neg: Tensor) -> Tensor:
    """Per-column AUROC of scores ``pos [n_pos, m]`` against ``neg [n_neg, m]``: the share of
    (positive, negative) pairs ranked right, ties counting one half. Each positive is located
    among the sorted negatives (``searchsorted``), so per-token sets of 10^5 rows are cheap.

    Example:
        >>> auroc(torch.tensor([[3.0], [2.0]]), torch.tensor([[1.0], [2.0]])).tolist()
        [0.875]
    """
    if pos.shape[0] == 0 or neg.shape[0] == 0:
        raise ValueError("auroc needs at least one positive and one negative row")
    ranked = neg.T.contiguous().sort(-1).values  # [m, n_neg]
    out = torch.zeros(pos.shape[1], dtype=torch.float64)
    for i in range(0, pos.shape[0], 4096):
        p = pos[i : i + 4096].T.contiguous().to(ranked.dtype)  # [m, chunk]
        below = torch.searchsorted(ranked, p)
        at_or_below = torch.searchsorted(ranked, p, right=True)
        out += (below.double() + 0.5 * (at_or_below - below).double()).sum(-1)
    return out / (pos.shape[0] * neg.shape[0])


def _doc_max(model: Any, sae: SAE, texts: list[str], batch_size: int) -> Tensor:
    """Max activation per document over its first row of tokens (within the context)."""
    from lens.dictionaries.stream import doc_rows  # noqa: PLC0415

    width = min(int(getattr(model.cfg, "n_ctx", 256) or 256), 256)
    rows = [doc_rows(model, t, width)[0] for t in texts]
    return torch.stack(
        [a.acts.max(0).values for a in encode(model, sae, rows, batch_size=batch_size)]
    )


def find_features(
    model: Any, sae: SAE, *, batch_size: int = 8, code_docs: int = 120, max_chars: int = 1000
) -> dict:
    """The latents that best separate known properties of documents (max activation per
    document, AUROC): each language of lens's built-in texts against the others, Python code
    against English prose (held-out stdlib code vs docstrings/comments), and harmful against
    harmless requests (all languages; code and prose documents cut to ``max_chars``).
    Reports the best latent per property."""
    from lens.data.builtin import load_builtin  # noqa: PLC0415
    from lens.data.corpus import documents  # noqa: PLC0415

    texts = load_builtin("texts").records
    langs = sorted({r.language for r in texts})
    acts = _doc_max(model, sae, [r.text for r in texts], batch_size)
    best = []
    for lang in langs:
        on = torch.tensor([r.language == lang for r in texts])
        score = auroc(acts[on], acts[~on])
        f = int(score.argmax())
        best.append(
            {
                "property": f"language={lang}",
                "feature": f,
                "auroc": float(score[f]),
                "n_pos": int(on.sum()),
                "n_neg": int((~on).sum()),
            }
        )
    held = list(itertools.islice(documents(split="heldout", sources=["stdlib"]), 4 * code_docs))
    code = [d.text[:max_chars] for d in held if d.kind == "code"][:code_docs]
    prose = [d.text[:max_chars] for d in held if d.kind != "code"][:code_docs]
    ca, pa = _doc_max(model, sae, code, batch_size), _doc_max(model, sae, prose, batch_size)
    score = auroc(ca, pa)
    f = int(score.argmax())
    best.append(
        {
            "property": "python code vs prose",
            "feature": f,
            "auroc": float(score[f]),
            "n_pos": len(code),
            "n_neg": len(prose),
        }
    )
    reqs = load_builtin("requests").records
    ra = _doc_max(model, sae, [r.text for r in reqs], batch_size)
    harm = torch.tensor([r.label == "harmful" for r in reqs])
    score = auroc(ra[harm], ra[~harm])
    f = int(score.argmax())
    best.append(
        {
            "property": "harmful vs harmless request",
            "feature": f,
            "auroc": float(score[f]),
            "n_pos": int(harm.sum()),
            "n_neg": int((~harm).sum()),
        }
    )
    return {"hook": sae.in_hook, "pooling": "max over the document's tokens", "best": best}
