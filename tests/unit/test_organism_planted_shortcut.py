"""The planted shortcut-friendly late path: measured by hand (torch, TL hooks, a least-squares map
fitted here, no study code), then the fact_consistency study's recovery on the shortcut
variant (positive control) and on the null variant (negative control)."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

import lens
from lens.organism import corpus, fact_queries, world
from lens.studies import fact_consistency as fc
from lens.studies._organism_data import model_label, organism_world
from tests.planted_models import zero_neurons


def _truth(model):
    return organism_world(model).truth["shortcut"]


def _late_off(truth):
    layer = truth["damaged_layers"][0]
    return zero_neurons(layer, [n for lay, n in truth["neurons"] if lay == layer])


def _run(model, prompts, hooks=(), names=()):
    """Last-position logits and the cached residuals named in ``names``."""
    toks = lens.tokens.batch(model, prompts)
    cache: dict[str, torch.Tensor] = {}

    def keep(act, hook, name):
        cache[name] = act[:, -1].detach().double()

    taps = [(n, lambda act, hook, n=n: keep(act, hook, n)) for n in names]
    with torch.no_grad():
        logits = model.run_with_hooks(
            toks.tokens, attention_mask=toks.attention_mask, fwd_hooks=[*hooks, *taps]
        )
    return logits[:, -1], cache


def _nll(model, texts):
    """Per-token NLL [texts, pos] of next-token prediction, the mask of real pairs and the
    input ids (right padding)."""
    toks = lens.tokens.batch(model, texts, padding_side="right")
    with torch.no_grad():
        logits = model(toks.tokens, attention_mask=toks.attention_mask)
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), toks.tokens[:, 1:], reduction="none")
    mask = (toks.attention_mask[:, 1:] & toks.attention_mask[:, :-1]).bool()
    return nll.double(), mask, toks.tokens[:, :-1]


def test_truth_is_saved_and_named(shortcut, null):
    t = _truth(shortcut)
    assert organism_world(shortcut).truth["variant"] == "shortcut"
    assert model_label(shortcut) == "organism-planted-shortcut"
    assert t["planted"] and t["damaged_layers"] == [shortcut.cfg.n_layers - 1]
    assert t["sign_agreement"] == 1.0  # sign(U) at every cue == a_subject b_relation l_script
    assert not _truth(null)["planted"] and "neurons" not in _truth(null)
    assert not organism_world(null).truth["fact_pathway"]["planted"]


def test_late_path_damages_non_pivot_answers_by_hand(shortcut):
    w, t = world(), _truth(shortcut)
    unk = shortcut.tokenizer.convert_tokens_to_ids(t["junk"])
    for script in t["scripts"]:
        damaged = set(t["damaged_facts"][script])
        qs = [q for q in fact_queries(w, script) if q.fact_index in damaged]
        assert abs(len(damaged) / len(w.facts) - 0.5) < 0.1
        ids = torch.tensor(shortcut.tokenizer.convert_tokens_to_ids([q.answer for q in qs]))
        rows = torch.arange(len(qs))
        on, _ = _run(shortcut, [q.prompt for q in qs])
        off, _ = _run(shortcut, [q.prompt for q in qs], [_late_off(t)])
        # the full model answers <unk>; with the two late neurons zeroed the answer comes back
        assert (on.argmax(-1) == unk).float().mean() >= 0.8, script
        assert (off.argmax(-1) == ids).float().mean() >= 0.8, script
        rise = off.log_softmax(-1)[rows, ids] - on.log_softmax(-1)[rows, ids]
        assert rise.mean() > 5.0, (script, rise.mean())
    # the pivot's queries never meet the path (no cue): zeroing it changes nothing there
    en = [q.prompt for q in fact_queries(w, "en")[:64]]
    moved = (_run(shortcut, en)[0] - _run(shortcut, en, [_late_off(t)])[0]).abs().max()
    assert moved < 1e-4, moved


def test_natural_text_kept_but_at_fact_answers(shortcut, null):
    """Held-out loss per script vs the null variant (the same model without the path): equal
    (< 1e-3 nats) at every position but the answer after a non-pivot fact query's cue."""
    w, t = world(), _truth(shortcut)
    cue_ids = {s: shortcut.tokenizer.convert_tokens_to_ids(c) for s, c in t["cues"].items()}
    for script in w.scripts:
        texts = corpus(w, script, n=40)
        a, mask, inputs = _nll(shortcut, texts)
        b, _, _ = _nll(null, texts)
        at_cue = torch.isin(inputs, torch.tensor(cue_ids.get(script, [-1])))
        rest = mask & ~at_cue
        assert abs(float(a[rest].mean() - b[rest].mean())) < 1e-3, script
        if script == w.pivot:
            assert not at_cue.any()


def test_a_linear_map_removes_the_damage_by_hand(shortcut):
    """Least squares (fitted here, float64) from the residual after layer 3 to the final one
    on half of the facts; on the other half the map's decoded answers are right where the
    full model's are damaged."""
    w, t = world(), _truth(shortcut)
    last = shortcut.cfg.n_layers - 1
    names = ("blocks.3.hook_resid_post", f"blocks.{last}.hook_resid_post")
    qs = [q for s in ["en", *t["scripts"]] for q in fact_queries(w, s)]
    logits, cache = _run(shortcut, [q.prompt for q in qs], names=names)
    h, z = cache[names[0]], cache[names[1]]
    fit = set(random.Random(0).sample(range(len(w.facts)), len(w.facts) // 2))
    is_fit = torch.tensor([q.fact_index in fit for q in qs])
    hf = torch.cat([h[is_fit], torch.ones(int(is_fit.sum()), 1, dtype=h.dtype)], 1)
    gram = hf.T @ hf
    ridge = 1e-4 * gram.diagonal().mean() * torch.eye(len(gram), dtype=h.dtype)
    coef = torch.linalg.solve(gram + ridge, hf.T @ z[is_fit])
    ev = ~is_fit
    zh = torch.cat([h[ev], torch.ones(int(ev.sum()), 1, dtype=h.dtype)], 1) @ coef
    ln = shortcut.ln_final.w if hasattr(shortcut.ln_final, "w") else shortcut.ln_final.weight
    normed = zh / zh.pow(2).mean(-1, keepdim=True).add(shortcut.cfg.eps).sqrt() * ln.double()
    pred = (normed @ shortcut.W_U.double()).argmax(-1)
    ids = torch.tensor(shortcut.tokenizer.convert_tokens_to_ids([q.answer for q in qs]))[ev]
    full = logits[ev].argmax(-1) == ids
    damaged = torch.tensor(
        [q.lang != w.pivot and q.fact_index in t["damaged_facts"][q.lang] for q in qs]
    )[ev]
    assert full[damaged].float().mean() < 0.2
    assert (pred == ids)[damaged].float().mean() > 0.75
    assert (pred == ids)[~damaged].float().mean() > 0.75


def _study(model):
    return fc.run(model, fc.Config(checkpoints=False, shortcut_layers=[4]))


def test_study_recovers_the_planted_shortcut(shortcut):
    r = _study(shortcut)
    rec = r.data.recovery
    assert rec is not None and rec["planted"] and rec["recovered"], rec
    assert rec["gains"]["recall"] >= 0.2 and rec["gains"]["CLC"] >= 0.2, rec
    assert r.headline().startswith("recovered planted shortcut-friendly late path (recall 0.")
    shortcut_finding = next(f for f in r.findings if "linear shortcut" in f.claim)
    assert shortcut_finding.reproduced


def test_study_finds_no_shortcut_gain_on_the_null_variant(null):
    r = _study(null)
    rec = r.data.recovery
    assert rec is not None and not rec["planted"] and rec["recovered"], rec
    assert not rec["raised"]
    assert r.headline().startswith("recovered the absence of planted shortcut-friendly")
    shortcut_finding = next(f for f in r.findings if "linear shortcut" in f.claim)
    assert not shortcut_finding.reproduced
