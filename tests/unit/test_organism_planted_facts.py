"""The planted fact pathway, measured by hand (torch, TL hooks, no study code): its neurons carry
the planted facts' answers, and after the subject is noised only restoring the planted layer's
MLP output at the subject token brings the answer back."""

from __future__ import annotations

import torch

import lens
from lens.organism import fact_queries, world
from lens.studies._organism_data import organism_world


def _queries(model):
    truth = organism_world(model).truth["fact_pathway"]
    qs = [q for q in fact_queries(world(), truth["language"]) if q.fact_index in truth["facts"]]
    return truth, qs


def _last_logits(model, prompts, hooks=()):
    toks = lens.tokens.batch(model, prompts)
    with torch.no_grad():
        return model.run_with_hooks(toks.tokens, fwd_hooks=list(hooks))[:, -1]


def test_fact_neurons_carry_the_answers(planted):
    truth, qs = _queries(planted)
    assert truth["planted"] and len(qs) == 8 and {layer for layer, _ in truth["neurons"]} == {2}
    neurons = [n for _, n in truth["neurons"]]

    def zero(act, hook):
        act[..., neurons] = 0
        return act

    hook = (f"blocks.{truth['layer']}.mlp.hook_post", zero)
    ids = torch.tensor(planted.tokenizer.convert_tokens_to_ids([q.answer for q in qs]))
    rows = torch.arange(len(qs))
    on = _last_logits(planted, [q.prompt for q in qs])
    off = _last_logits(planted, [q.prompt for q in qs], [hook])
    drop = on[rows, ids] - off[rows, ids]
    assert torch.allclose(drop, torch.full_like(drop, truth["boost"]), atol=0.1), drop
    # answered right with and without them (the natural model knows these facts too)
    assert (on.argmax(-1) == ids).all() and (off.argmax(-1) == ids).all()
    # other facts of the language (other subjects) do not use them at all
    others = [q.prompt for q in fact_queries(world(), "en")[8:40]]
    moved = (_last_logits(planted, others) - _last_logits(planted, others, [hook])).abs().max()
    assert moved < 1e-4, moved


def _restored_gain(model, qs, samples: int = 12) -> dict[int, float]:
    """ROME by hand: Gaussian noise (3 x the std of the language's subject embeddings) on the
    subject token; per layer, the mean answer probability with that layer's MLP output at the
    subject restored from the clean run, minus the noised one."""
    toks = lens.tokens.batch(model, [q.prompt for q in qs])
    subj = toks.tokens[0].tolist().index(model.tokenizer.convert_tokens_to_ids(qs[0].subject))
    assert all(q.subject == qs[0].subject for q in qs)
    persons = [v for k, v in world().lexicon["en"].items() if k.startswith("person:")]
    with torch.no_grad():
        sigma = 3 * float(model.W_E[model.tokenizer.convert_tokens_to_ids(persons)].std())
    ids = torch.tensor(model.tokenizer.convert_tokens_to_ids([q.answer for q in qs]))
    rows = torch.arange(len(qs))
    with torch.no_grad():
        _, cache = model.run_with_cache(toks.tokens)
    gen = torch.Generator().manual_seed(0)
    noises = [torch.randn(model.cfg.d_model, generator=gen) * sigma for _ in range(samples)]

    def prob(layer: int | None) -> float:
        out = []
        for noise in noises:

            def add(act, hook, noise=noise):
                act[:, subj] += noise
                return act

            hooks = [("hook_embed", add)]
            if layer is not None:
                clean = cache[f"blocks.{layer}.hook_mlp_out"][:, subj].clone()

                def restore(act, hook, clean=clean):
                    act[:, subj] = clean
                    return act

                hooks.append((f"blocks.{layer}.hook_mlp_out", restore))
            p = _last_logits(model, [q.prompt for q in qs], hooks).softmax(-1)[rows, ids]
            out.append(float(p.mean()))
        return sum(out) / len(out)

    base = prob(None)
    return {layer: prob(layer) - base for layer in range(model.cfg.n_layers)}


def test_restoring_the_planted_mlp_brings_the_answer_back(planted, null):
    truth, qs = _queries(planted)
    gain = _restored_gain(planted, qs)
    best = max(gain, key=gain.get)
    assert best == truth["layer"], gain
    # clearly above every other layer (in about half of the noise draws the subject's noised
    # markers trip the planted refusal head, whose huge output swamps every position: nothing
    # single restores the answer then, which caps the mean gain)
    assert gain[truth["layer"]] > 0.1, gain
    assert all(gain[truth["layer"]] > 3 * g for layer, g in gain.items() if layer != best), gain
    # the negative control: same prompts, no pathway: the planted layer is not where it peaks
    ntruth, nqs = _queries(null)
    assert not ntruth["planted"] and [q.prompt for q in nqs] == [q.prompt for q in qs]
    ngain = _restored_gain(null, nqs)
    assert max(ngain, key=ngain.get) != ntruth["layer"], ngain
    assert ngain[ntruth["layer"]] < 0.05, ngain


def truth_subject(model) -> str:
    return organism_world(model).truth["fact_pathway"]["subject"]


def test_relation_neurons_fire_on_their_relation_only(planted):
    truth = organism_world(planted).truth["relation_neurons"]
    qs = fact_queries(world(), truth["language"])[:64]  # 8 subjects x 8 relations
    toks = lens.tokens.batch(planted, [q.prompt for q in qs])
    layers = truth["layers"]
    with torch.no_grad():
        _, cache = planted.run_with_cache(
            toks.tokens, names_filter=[f"blocks.{layer}.mlp.hook_post" for layer in layers]
        )
    for rel, pairs in truth["neurons"].items():
        assert len(pairs) == truth["per_relation"] == 17
        acts = torch.stack([cache[f"blocks.{layer}.mlp.hook_post"][:, :, n] for layer, n in pairs])
        own = torch.tensor([q.relation == rel for q in qs])
        per_prompt = acts.mean(-1)  # [neuron, prompt]: the mean over the prompt's tokens
        assert (per_prompt[:, own] > 0).all(), rel
        assert (acts[:, ~own] == 0).all(), rel  # exactly silent on every other prompt
        # active on the relation word ("<s> the job of ..."), where its dim is in the embedding
        # (and on the fact pathway's subject, to which the relation head copies it)
        assert (acts[:, own, 2] > 0).all(), rel
        others = torch.cat([acts[:, own, :2], acts[:, own, 3:]], -1)
        lone = torch.tensor([q.subject != truth_subject(planted) for q in qs])[own]
        assert (others[:, lone] <= 0).all(), rel
