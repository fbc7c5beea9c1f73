"""Synthetic ground truth for dictionaries: activations built as sparse combinations of known
feature directions (power-law firing frequencies, correlated firing within groups; in the
spirit of SynthSAEBench, arXiv 2602.14687), a trainer that needs no model, and the scores
that match a dictionary's latents to the true features.

Scores: *mean max cosine* (each true direction's best |cosine| with any decoder row) and
*MCC*: decoder rows and true features are paired one-to-one greedily by |cosine| (highest
first; a lower bound on the optimal assignment) and the Pearson correlation between each
pair's latent activation and true coefficient over fresh samples is averaged over the true
features.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interventions.dictionary import SAE
from lens.dictionaries.training import Trainer


@dataclass
class SyntheticFeatures:
    """Known features: ``directions`` ``[n_features, d]`` (unit rows), firing probabilities
    ``p`` (power law with exponent ``alpha``, mean ``avg_active`` features per vector),
    firing correlated within consecutive groups of ``group`` features (correlation ``rho``
    of the latent Gaussians), magnitudes uniform in ``[0.5, 1.5]``.

    Example:
        >>> truth = SyntheticFeatures.make(n_features=8, d=4, avg_active=2.0, seed=0)
        >>> x, c = truth.sample(5, torch.Generator().manual_seed(1))
        >>> tuple(x.shape), tuple(c.shape), torch.allclose(x, c @ truth.directions)
        ((5, 4), (5, 8), True)
    """

    directions: Tensor
    p: Tensor
    group: int = 2
    rho: float = 0.5

    @classmethod
    def make(
        cls,
        *,
        n_features: int,
        d: int,
        avg_active: float = 3.0,
        alpha: float = 0.5,
        group: int = 2,
        rho: float = 0.5,
        seed: int = 0,
    ) -> SyntheticFeatures:
        g = torch.Generator().manual_seed(seed)
        dirs = torch.randn(n_features, d, generator=g)
        dirs /= dirs.norm(dim=-1, keepdim=True)
        raw = (torch.arange(n_features, dtype=torch.float64) + 1) ** -alpha
        p = (raw / raw.sum() * avg_active).clamp(max=0.95).float()
        return cls(dirs, p, group, rho)

    def sample(
        self, n: int, gen: torch.Generator
    ) -> tuple[Float[Tensor, "n d"], Float[Tensor, "n n_features"]]:
        """``n`` vectors and their true coefficients."""
        m = self.p.shape[0]
        shared = torch.randn(n, math.ceil(m / self.group), generator=gen)
        shared = shared.repeat_interleave(self.group, dim=1)[:, :m]
        z = math.sqrt(self.rho) * shared + math.sqrt(1 - self.rho) * torch.randn(
            n, m, generator=gen
        )
        threshold = torch.distributions.Normal(0.0, 1.0).icdf(self.p)
        on = z < threshold
        mags = 0.5 + torch.rand(n, m, generator=gen)
        coeffs = torch.where(on, mags, torch.zeros_like(mags))
        return coeffs @ self.directions, coeffs

    def batches(self, size: int, seed: int) -> Iterator[Tensor]:
        gen = torch.Generator().manual_seed(seed)
        while True:
            yield self.sample(size, gen)[0]


def fit(
    truth: SyntheticFeatures,
    *,
    n_latents: int,
    k: int,
    steps: int = 300,
    batch_size: int = 512,
    lr: float = 1e-2,
    seed: int = 0,
) -> SAE:
    """Train a TopK SAE on samples of ``truth`` with :class:`~lens.dictionaries.Trainer`."""
    d = truth.directions.shape[1]
    g = torch.Generator().manual_seed(10_007 + seed)  # not the stream that drew the truth
    w = torch.randn(n_latents, d, generator=g)
    w /= w.norm(dim=-1, keepdim=True)
    init = SAE(
        w.T.clone(),
        torch.zeros(n_latents),
        w,
        torch.zeros(d),
        site="resid_post",
        layer=0,
        k=k,
        meta={"synthetic": True},
    )
    trainer = Trainer(init, lr=lr, dead_after_tokens=batch_size * 20)
    stream = truth.batches(batch_size, 20_011 + seed)
    for _ in range(steps):
        trainer.step(next(stream))
    return trainer.result()


@dataclass
class Recovery:
    """How well a dictionary recovers known features (see the module docstring)."""

    mean_max_cosine: float
    mcc: float
    matched_cosine: Tensor  # per true feature, |cos| with its paired latent
    pairs: list[tuple[int, int]]  # (true feature, latent)


def recovery(sae: SAE, truth: SyntheticFeatures, *, n: int = 4096, seed: int = 123) -> Recovery:
    """Match ``sae``'s latents to ``truth``'s features (see the module docstring).

    Example:
        >>> truth = SyntheticFeatures.make(n_features=4, d=8, avg_active=1.0, seed=0)
        >>> truth.directions = torch.linalg.qr(truth.directions.T)[0].T  # orthonormal
        >>> w = truth.directions
        >>> perfect = SAE(w.T.clone(), torch.zeros(4), w.clone(), torch.zeros(8),
        ...               site="resid_post", layer=0, activation="relu")
        >>> r = recovery(perfect, truth)
        >>> round(r.mean_max_cosine, 4), r.mcc > 0.99
        (1.0, True)
    """
    dirs = truth.directions
    dec = sae.W_dec / sae.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (dirs @ dec.T).abs()  # [n_features, d_sae]
    mmc = float(cos.max(dim=1).values.mean())
    order = torch.argsort(cos.flatten(), descending=True)
    used_f, used_l, pairs = set(), set(), []
    n_lat = cos.shape[1]
    for flat in order.tolist():
        f, lat = divmod(flat, n_lat)
        if f in used_f or lat in used_l:
            continue
        used_f.add(f)
        used_l.add(lat)
        pairs.append((f, lat))
        if len(pairs) == min(cos.shape):
            break
    x, coeffs = truth.sample(n, torch.Generator().manual_seed(seed))
    acts = sae.encode(x)
    corr = torch.zeros(dirs.shape[0])
    matched = torch.zeros(dirs.shape[0])
    for f, lat in pairs:
        a, c = acts[:, lat] - acts[:, lat].mean(), coeffs[:, f] - coeffs[:, f].mean()
        denom = float(a.norm() * c.norm())
        corr[f] = float(a @ c) / denom if denom > 0 else 0.0
        matched[f] = cos[f, lat]
    return Recovery(mmc, float(corr.mean()), matched, sorted(pairs))
