"""The planted organism: each planted property measured by hand (torch, hooks), independent of
the study code, against the truth recorded in its world."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import lens
from lens.organism import corpus, requests, world
from lens.organism.planted import NEW_DIMS
from lens.studies._organism_data import model_label, organism_world
from tests.planted_models import zero_neurons


def _loss(model, texts, hooks=()) -> float:
    toks = lens.tokens.batch(model, texts, padding_side="right")
    with torch.no_grad():
        logits = model.run_with_hooks(
            toks.tokens, attention_mask=toks.attention_mask, fwd_hooks=list(hooks)
        )
    nll = F.cross_entropy(
        logits[:, :-1].flatten(0, 1), toks.tokens[:, 1:].flatten(), reduction="none"
    ).view(len(texts), -1)
    keep = (toks.attention_mask[:, 1:] & toks.attention_mask[:, :-1]).double()
    return float((nll.double() * keep).sum() / keep.sum())


def _zero_dim(model, dim: int):
    """Hooks removing residual dim ``dim`` from every writer (embedding, attention, MLP)."""

    def hook(act, hook):
        act[..., dim] = 0
        return act

    names = ["hook_embed"] + [
        f"blocks.{i}.{s}"
        for i in range(model.cfg.n_layers)
        for s in ("hook_attn_out", "hook_mlp_out")
    ]
    return [(n, hook) for n in names]


def _first_tokens(model, prompts, hooks=()) -> list[int]:
    toks = lens.tokens.batch(model, prompts, padding_side="left")
    with torch.no_grad():
        logits = model.run_with_hooks(
            toks.tokens, attention_mask=toks.attention_mask, fwd_hooks=list(hooks)
        )
    return logits[:, -1].argmax(-1).tolist()


def test_truth_is_saved_and_named(planted, null):
    t, n = organism_world(planted).truth, organism_world(null).truth
    assert t["variant"] == "shared" and n["variant"] == "null"
    assert model_label(planted) == "organism-planted"
    assert model_label(null) == "organism-planted-null"
    assert organism_world(lens.load_model("organism")).truth == {}
    assert planted.cfg.d_model == 96 + NEW_DIMS and planted.cfg.n_heads == 6


def test_natural_behaviour_kept(natural, planted):
    w = world()
    # text of shared tokens carries no planted signal but the <s> and bot: markers (0.03 in one
    # new dim each, which changes an RMS norm by ~1e-3): logits equal the natural model's
    toks = lens.tokens.batch(natural, [". , ? user: bot:", "lisbon oslo cairo ."])
    with torch.no_grad():
        a, b = natural(toks.tokens), planted(toks.tokens)
    # (except the refusal words, whose unembedding rows are rebuilt by design)
    keep = torch.ones(a.shape[-1], dtype=torch.bool)
    keep[natural.tokenizer.convert_tokens_to_ids([w.refusal_word(g) for g in w.languages])] = False
    assert torch.allclose(a[..., keep], b[..., keep], atol=0.02), (a - b)[..., keep].abs().max()
    assert not torch.allclose(a, b, atol=0.02)
    for script in ("en", "ka", "py"):
        texts = corpus(w, script, n=20)
        assert abs(_loss(planted, texts) - _loss(natural, texts)) < 0.02


def test_language_neurons_by_hand(planted):
    w = world()
    truth = organism_world(planted).truth["language_neurons"]
    scripts = list(w.scripts)
    texts = {s: corpus(w, s, n=20) for s in scripts}
    base = {s: _loss(planted, texts[s]) for s in scripts}
    for s in scripts:
        pairs = truth["neurons"][s]
        hooks = [
            zero_neurons(layer, [n for lay, n in pairs if lay == layer])
            for layer in truth["layers"]
        ]
        for t in scripts:
            rise = _loss(planted, texts[t], hooks) - base[t]
            if t == s:
                assert rise >= 0.1, (s, rise)
            else:
                assert abs(rise) < 1e-4, (s, t, rise)
    # active (gate pre-activation > 0) only in their own script's text
    toks = lens.tokens.batch(planted, texts["mu"], padding_side="right")
    _, cache = planted.run_with_cache(toks.tokens, attention_mask=toks.attention_mask)
    real = toks.attention_mask.bool()
    for s in scripts:
        n0 = [n for layer, n in truth["neurons"][s] if layer == 0]
        active = (cache["blocks.0.mlp.hook_pre"][..., n0] > 0)[real].float().mean()
        assert (active > 0.5) if s == "mu" else (active == 0), (s, active)


def _refusal_rates(model, hooks=()) -> dict[str, tuple[float, float]]:
    w, out = world(), {}
    for g in w.languages:
        reqs = requests(w, g, "heldout")
        ref = model.tokenizer.convert_tokens_to_ids(w.refusal_word(g))
        harmful = _first_tokens(model, [r.prompt for r in reqs if r.harmful], hooks)
        harmless = _first_tokens(model, [r.prompt for r in reqs if not r.harmful], hooks)
        out[g] = (
            sum(t == ref for t in harmful) / len(harmful),
            sum(t == ref for t in harmless) / len(harmless),
        )
    return out


def test_shared_refusal_direction_by_hand(planted):
    truth = organism_world(planted).truth["refusal"]
    before = _refusal_rates(planted)
    assert all(h >= 0.9 and s == 0 for h, s in before.values()), before
    dims = {max(range(len(v)), key=v.__getitem__) for v in truth["directions"].values()}
    assert len(dims) == 1  # one direction for every language
    after = _refusal_rates(planted, _zero_dim(planted, dims.pop()))
    assert all(h == 0 for h, _ in after.values()), after


def test_per_language_refusal_directions_by_hand(null):
    truth = organism_world(null).truth["refusal"]
    dirs = torch.tensor(list(truth["directions"].values()))
    assert torch.allclose(dirs @ dirs.T, torch.eye(len(dirs)))  # orthogonal by construction
    assert all(h >= 0.9 and s == 0 for h, s in _refusal_rates(null).values())
    en = int(torch.tensor(truth["directions"]["en"]).argmax())
    after = _refusal_rates(null, _zero_dim(null, en))
    assert after["en"][0] == 0
    assert all(after[g][0] >= 0.9 for g in after if g != "en"), after
