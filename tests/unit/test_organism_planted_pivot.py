"""The planted latent pivot, measured by hand (torch, TL hooks, no study code): the logit lens
of the middle layers decodes the pivot-language word at the translation prompt's last token,
the last layer the natural model's answer; the null variant has no such detour."""

from __future__ import annotations

import torch

import lens
from lens.organism import translation_pairs, world
from lens.studies._organism_data import organism_world


def _curves(model, pairs) -> tuple[list[float], list[float], torch.Tensor]:
    """Per layer, the mean probability of the pivot word and of the target word when the
    last token's residual stream (after the layer) goes through the final norm and the
    unembedding; and the final logits."""
    toks = lens.tokens.batch(model, [p.prompt for p in pairs])
    ids = model.tokenizer.convert_tokens_to_ids
    piv, tgt = (
        torch.tensor(ids([p.pivot_word for p in pairs])),
        torch.tensor(ids([p.answer for p in pairs])),
    )
    rows = torch.arange(len(pairs))
    pivot, target = [], []
    with torch.no_grad():
        logits, cache = model.run_with_cache(toks.tokens)
        for layer in range(model.cfg.n_layers):
            x = cache[f"blocks.{layer}.hook_resid_post"][:, -1:]
            p = model.unembed(model.ln_final(x))[:, 0].softmax(-1)
            pivot.append(float(p[rows, piv].mean()))
            target.append(float(p[rows, tgt].mean()))
    return pivot, target, logits[:, -1]


def _pairs():
    w = world()
    return translation_pairs(w, "ka", "mu") + translation_pairs(w, "ro", "py")


def test_middle_layers_decode_the_pivot_word_first(planted, null):
    truth = organism_world(planted).truth["latent_pivot"]
    assert truth["planted"] and truth["layers"] == [2, 3, 4]
    pivot, target, final = _curves(planted, _pairs())
    for layer in truth["layers"]:
        assert pivot[layer] > 0.5 and pivot[layer] > 3 * target[layer], (layer, pivot, target)
    for layer in range(truth["layers"][0]):
        assert pivot[layer] < 0.05, pivot
    assert target[-1] > 0.5 and pivot[-1] < 0.06, (pivot, target)  # the last layer: the target
    # the final answer is the one without the pivot (the null variant: the same model but the
    # pivot; the detour is cancelled up to a least-squares scale): top-1 agrees on > 95 %
    _, _, plain = _curves(null, _pairs())
    assert (final.argmax(-1) == plain.argmax(-1)).float().mean() > 0.95


def test_no_pivot_in_the_null_variant(null):
    truth = organism_world(null).truth["latent_pivot"]
    assert not truth["planted"]
    pivot, target, _ = _curves(null, _pairs())
    assert max(pivot) < 0.05, pivot
