"""Dictionaries scored against the organism's per-token truth: the AUROC against counts by
hand, decoder-row recovery by hand, and a trained SAE against an untrained one on language."""

from __future__ import annotations

import itertools
import statistics

import pytest
import torch

import lens
from lens.dictionaries import SAE, random_sae
from lens.dictionaries.inspection import auroc
from lens.dictionaries.organism_truth import (
    planted_recovery,
    property_aurocs,
    token_activations,
    token_properties,
)
from lens.organism import world as organism_world
from lens.organism.documents import DocumentSampler


def test_auroc_equals_pair_count_by_hand():
    # scores with ties inside and across the classes; every (pos, neg) pair counted in Python
    pos = torch.tensor([[3.0, 0.0], [1.0, 0.0], [2.0, 5.0], [0.0, 0.0]])
    neg = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    want = []
    for col in range(2):
        wins = 0.0
        for p, n in itertools.product(pos[:, col].tolist(), neg[:, col].tolist()):
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
        want.append(wins / 12)
    # column 0: 3 beats all (3), 1 beats two and ties one (2.5), 2 beats all (3), 0 ties two
    # (1) -> 9.5 / 12; column 1: the 5 beats all (3), the zeros lose to 1 and tie two (1 each)
    assert want == pytest.approx([9.5 / 12, 6 / 12])
    assert auroc(pos, neg).tolist() == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="one positive and one negative"):
        auroc(pos[:0], neg)


def test_property_aurocs_and_recovery_by_hand():
    tokens = torch.tensor([4, 1, 4, 2, 3])
    acts = torch.tensor([[0.0, 2.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    is4 = torch.zeros(5, dtype=torch.bool)
    is4[4] = True
    got = property_aurocs(tokens, acts, {"is4": is4, "rare": is4 & False}, min_count=1)
    # latent 1: positives 2.0 and 1.0 against 0, 0, 1.0 -> (3 + 2.5) / 6; latent 0: 1.5 / 6
    assert got == {"is4": {"latent": 1, "auroc": pytest.approx(5.5 / 6), "n_pos": 2, "n_neg": 3}}
    rows = torch.tensor([[1.0, 0.0, 0.0], [0.0, -2.0, 2.0], [0.0, 0.0, 1.0]])
    sae = SAE(rows.T.clone(), torch.zeros(3), rows, torch.zeros(3), site="resid_post", layer=0, k=1)
    rec = planted_recovery(
        sae, {"r": torch.tensor([0.0, -1.0, 1.0]), "x": torch.tensor([2.0, 0, 0])}
    )
    assert rec == {"r": {"latent": 1, "cosine": 1.0}, "x": {"latent": 0, "cosine": 1.0}}


@pytest.fixture(scope="module")
def organism():
    return lens.load_model("organism"), organism_world()


def test_token_properties_follow_the_lexicon(organism):
    model, world = organism
    props = token_properties(world, model.tokenizer)
    vocab = model.tokenizer.get_vocab()
    cat = {vocab[world.word(s, "concept:cat")] for s in world.scripts}
    assert set(props["concept=cat"].nonzero().flatten().tolist()) == cat and len(cat) == 7
    assert props["script=ka"][vocab[world.word("ka", "concept:cat")]]
    assert not props["script=en"][vocab[world.word("ka", "concept:cat")]]
    harm = props["harmful_action"]
    assert int(harm.sum()) == len(world.languages) * len(world.harmful_actions)
    assert not harm[vocab[world.word("en", "action:bake")]]


def test_trained_sae_beats_untrained_on_language(organism):
    """Per script, the best latent's per-token AUROC on held-out organism text, averaged over
    the 7 scripts: a trained SAE (256 latents, k = 8, ~50k tokens) against an untrained one of
    the same width. (The margin is small, ~0.03: no latent is a language feature; see
    docs/results/organism/dictionaries.)"""
    model, world = organism
    torch.manual_seed(0)
    sampler = DocumentSampler(world, seed=0)
    train = [" ".join(sampler.sample()) for _ in range(1200)]
    sampler = DocumentSampler(world, seed=1)
    held = [" ".join(sampler.sample()) for _ in range(150)]
    kw = {"site": "resid_post", "layer": 3, "n_latents": 256, "k": 8}
    sae = lens.dictionaries.train(
        model, train, **kw, batch_size=256, buffer_tokens=4096, max_length=64, rows_per_forward=32
    )
    props = {k: v for k, v in token_properties(world, model.tokenizer).items() if "script" in k}
    means = []
    for d in (sae, random_sae(model, **kw, seed=1)):
        toks, acts = token_activations(model, d, held)
        scores = property_aurocs(toks, acts, props)
        assert len(scores) == 7
        means.append(statistics.mean(s["auroc"] for s in scores.values()))
    trained, untrained = means
    assert trained > untrained + 0.01, means
