"""Dictionary evaluation against hand computations, and synthetic ground-truth recovery."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lens
from lens.dictionaries import SAE, evaluate, random_sae
from lens.dictionaries.synthetic import SyntheticFeatures, fit, recovery

PROMPTS = [[5, 9, 3, 17, 2, 40, 11], [7, 7, 1, 60], [100, 3, 4, 5, 6]]


@pytest.fixture(scope="module")
def model():
    return lens.load_model(lens.tiny_config("gpt2"))


class _Replace:
    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def hooks(self, model):
        return [(self.name, lambda act, hook: self.fn(act))]


@torch.no_grad()
def test_evaluate_matches_a_hand_computation(model):
    sae = random_sae(model, site="resid_post", layer=1, n_latents=96, k=6, seed=4)
    ev = evaluate(model, sae, PROMPTS, batch_size=2)
    ce = {"clean": [], "splice": [], "zero": []}
    xs, recons = [], []
    for p in PROMPTS:  # one prompt at a time, no padding, all by hand
        t = torch.tensor([p])
        probe = lens.Probe(sae.in_hook)
        with lens.apply(model, probes=[probe]):
            clean = model(t)
        x = probe.value[0]
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        v, i = pre.topk(6, dim=-1)
        feats = torch.zeros_like(pre).scatter(-1, i, v.clamp(min=0))
        recon = feats @ sae.W_dec + sae.b_dec
        xs.append(x)
        recons.append(recon)
        with lens.apply(model, _Replace(sae.in_hook, lambda a, r=recon: r[None])):
            spliced = model(t)
        with lens.apply(model, _Replace(sae.in_hook, torch.zeros_like)):
            zero = model(t)
        for name, logits in (("clean", clean), ("splice", spliced), ("zero", zero)):
            ce[name].append(F.cross_entropy(logits[0, :-1], t[0, 1:], reduction="none"))
    x, r = torch.cat(xs), torch.cat(recons)
    ev_ref = 1 - float((x - r).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    per = {k: float(torch.cat(v).mean()) for k, v in ce.items()}
    assert abs(ev.explained_variance - ev_ref) < 1e-4
    x1 = torch.cat([v[1:] for v in xs])  # the first position of each prompt left out
    r1 = torch.cat([v[1:] for v in recons])
    ev1_ref = 1 - float((x1 - r1).pow(2).sum() / (x1 - x1.mean(0)).pow(2).sum())
    assert abs(ev.explained_variance_after_first - ev1_ref) < 1e-4
    assert abs(ev1_ref - ev_ref) > 1e-3
    assert abs(ev.ce_clean - per["clean"]) < 1e-4
    assert abs(ev.ce_splice - per["splice"]) < 1e-4
    assert abs(ev.ce_zero - per["zero"]) < 1e-4
    rec = (per["zero"] - per["splice"]) / (per["zero"] - per["clean"])
    assert abs(ev.ce_loss_recovered - rec) < 1e-3
    assert abs(ev.ce_splice - ev.ce_clean) > 1e-3 and ev.kl_splice > 0
    assert ev.n_tokens == sum(map(len, PROMPTS)) and 4 < ev.l0 <= 6
    assert 0 <= ev.dead_fraction <= 1 and sum(ev.density_histogram) == int((ev.density > 0).sum())
    # exclude_first: position 0 is neither scored nor spliced (spliced CE at the first
    # prediction, made from position 0 alone, is then the clean one)
    skip = evaluate(model, sae, PROMPTS, batch_size=2, exclude_first=True)
    assert skip.n_tokens == ev.n_tokens - len(PROMPTS)
    assert abs(skip.explained_variance - ev1_ref) < 1e-4
    assert abs(skip.ce_clean - per["clean"]) < 1e-4 and abs(skip.ce_splice - ev.ce_splice) > 1e-4


def test_exact_dictionary_scores_perfect(model):
    d = model.cfg.d_model
    eye = torch.eye(d)
    exact = SAE(
        torch.cat([eye, -eye], 1),
        torch.zeros(2 * d),
        torch.cat([eye, -eye], 0),
        torch.zeros(d),
        site="resid_pre",
        layer=2,
        activation="relu",
    )
    ev = evaluate(model, exact, PROMPTS)
    assert abs(ev.explained_variance - 1) < 1e-5 and abs(ev.cosine - 1) < 1e-5
    assert abs(ev.ce_splice - ev.ce_clean) < 1e-4 and ev.kl_splice < 1e-6
    assert abs(ev.ce_loss_recovered - 1) < 1e-3 and ev.kl_zero > 1e-3


def test_synthetic_ground_truth_is_recovered():
    truth = SyntheticFeatures.make(n_features=32, d=32, avg_active=3.0, seed=5)
    sae = fit(truth, n_latents=64, k=4, steps=200, batch_size=256, lr=1e-2)
    got = recovery(sae, truth)
    untrained = recovery(fit(truth, n_latents=64, k=4, steps=1), truth)
    assert got.mcc >= 0.9 and got.mean_max_cosine >= 0.95
    assert untrained.mcc < 0.5 and untrained.mean_max_cosine < 0.7
