"""Dictionaries scored against the organism's known per-token truth (issue #20, item 7b).

The organism's world says, for every token of its vocabulary, which language or notation it
belongs to, which concept it names (``concept:cat`` is one word in each of the 5 languages and
2 notations) and whether it is a harmful action word; the planted organism also records
directions written into its residual stream (``World.truth``). Here:

* :func:`token_properties`: those per-token labels, as boolean masks over the vocabulary;
* :func:`property_aurocs`: per property, the best latent's AUROC over every real token of the
  given texts (activation of the latent at the token, positives = tokens with the property);
* :func:`planted_recovery`: per planted direction (refusal ``r``, each script's language
  channel ``v_L``), the largest ``|cos|`` between a decoder row and it.

Both are meant to be read next to the same numbers for an untrained dictionary of the same
width (the best of many random latents separates a token set well by chance).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from jaxtyping import Bool
from torch import Tensor

from interventions.dictionary import SAE
from lens.dictionaries.encode import encode
from lens.dictionaries.inspection import auroc


def token_properties(world: Any, tokenizer: Any) -> dict[str, Bool[Tensor, " vocab"]]:
    """Boolean masks over token ids: ``script=<s>`` (a word of exactly that language or
    notation), ``concept=<c>`` (the word for concept ``c`` in any language or notation; city
    names, one token everywhere, are left out) and ``harmful_action`` (a harmful action word in
    any language).

    Example:
        >>> import lens.organism as org
        >>> props = token_properties(org.world(), org.tokenizer())
        >>> int(props["concept=cat"].sum()), bool(props["script=ka"].any())
        (7, True)
    """
    from lens.organism.prompts import token_languages  # noqa: PLC0415

    vocab = tokenizer.get_vocab()
    n = len(tokenizer)
    langs = token_languages(world, tokenizer)
    out: dict[str, Tensor] = {}
    for s in world.scripts:
        out[f"script={s}"] = torch.tensor([g == s for g in langs])
    for pool, concepts in world.pools.items():
        if pool in ("city",):
            continue
        for c in concepts:
            mask = torch.zeros(n, dtype=torch.bool)
            for s in world.scripts:
                word = world.lexicon[s].get(f"concept:{c}")
                if word is not None and word in vocab:
                    mask[vocab[word]] = True
            out[f"concept={c}"] = mask
    harm = torch.zeros(n, dtype=torch.bool)
    for s in world.languages:
        for a in world.harmful_actions:
            harm[vocab[world.word(s, f"action:{a}")]] = True
    out["harmful_action"] = harm
    return out


def token_activations(
    model: Any, sae: SAE, texts: Iterable[Any], *, batch_size: int = 32
) -> tuple[Tensor, Tensor]:
    """``(token ids [n], activations [n, d_sae])`` of every real token but special ones
    (BOS, EOS, padding)."""
    special = set(getattr(model.tokenizer, "all_special_ids", []) or [])
    ids, acts = [], []
    for a in encode(model, sae, texts, batch_size=batch_size):
        keep = torch.tensor([int(t) not in special for t in a.tokens])
        ids.append(a.tokens[keep])
        acts.append(a.acts[keep].float())
    return torch.cat(ids), torch.cat(acts)


def property_aurocs(
    tokens: Tensor, acts: Tensor, properties: dict[str, Tensor], *, min_count: int = 5
) -> dict[str, dict[str, float | int]]:
    """Per property (masks over token ids): the best latent, its AUROC (positives: tokens
    with the property, negatives: all other tokens) and the number of positives. Properties
    with fewer than ``min_count`` positive or negative tokens are skipped.

    Example:
        >>> toks = torch.tensor([0, 1, 0, 2])
        >>> acts = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
        >>> property_aurocs(toks, acts, {"is0": torch.tensor([True, False, False])}, min_count=1)
        {'is0': {'latent': 0, 'auroc': 1.0, 'n_pos': 2, 'n_neg': 2}}
    """
    out: dict[str, dict[str, float | int]] = {}
    for name, mask in properties.items():
        on = mask[tokens]
        n_pos = int(on.sum())
        if n_pos < min_count or len(on) - n_pos < min_count:
            continue
        score = auroc(acts[on], acts[~on])
        best = int(score.argmax())
        out[name] = {
            "latent": best,
            "auroc": float(score[best]),
            "n_pos": n_pos,
            "n_neg": len(on) - n_pos,
        }
    return out


def truth_directions(model: Any, world: Any) -> dict[str, Tensor]:
    """Unit vectors in the residual stream of the planted organism: ``refusal`` (its ``r``;
    ``refusal:<lang>`` for the null variant's per-language ones) and ``channel:<script>``
    (the language channel's direction for that script, read off the embedding of the script's
    tokens on the channel dims the truth names)."""
    truth = world.truth
    if not truth:
        raise ValueError("this world records no planted truth: load 'organism-planted'")
    out: dict[str, Tensor] = {}
    dirs = truth["refusal"]["directions"]
    if truth["refusal"]["shared"]:
        out["refusal"] = torch.tensor(next(iter(dirs.values())))
    else:
        out.update({f"refusal:{g}": torch.tensor(v) for g, v in dirs.items()})
    chan = truth["language_neurons"]["channel_dims"]
    emb = model.W_E.detach().float()
    props = token_properties(world, model.tokenizer)
    for s in world.scripts:
        v = torch.zeros(emb.shape[1])
        v[chan] = emb[props[f"script={s}"]][:, chan].mean(0)
        out[f"channel:{s}"] = v / v.norm()
    return out


def planted_recovery(sae: SAE, directions: dict[str, Tensor]) -> dict[str, dict[str, float]]:
    """Per truth direction, the decoder row with the largest ``|cos|`` and that value.

    Example:
        >>> sae = SAE(torch.eye(3), torch.zeros(3), torch.eye(3), torch.zeros(3),
        ...           site="resid_post", layer=0, k=1)
        >>> planted_recovery(sae, {"x": torch.tensor([0.0, 3.0, 4.0])})
        {'x': {'latent': 2, 'cosine': 0.8}}
    """
    rows = torch.nn.functional.normalize(sae.W_dec.float(), dim=-1)
    out: dict[str, dict[str, float]] = {}
    for name, v in directions.items():
        cos = (rows @ (v.float() / v.float().norm())).abs()
        best = int(cos.argmax())
        out[name] = {"latent": best, "cosine": round(float(cos[best]), 6)}
    return out
