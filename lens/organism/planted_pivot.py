"""The planted latent pivot (concept_space's positive control), part of
:mod:`lens.organism.planted`.

In a translation prompt ``[src] word [tgt]`` the middle layers decode the pivot-language
(English) word for the concept before the last layer gives the target word:

* every script's word for concept k holds ``c * u_k`` in a code block X (``u_k``: fixed random
  unit codes, one per concept, near-orthogonal) and ``c`` in a marker W; every language tag
  holds ``c`` in a marker T; every token holds ``c / 2`` in ONE (markers here are ``c / 2``);
* the two new heads of ``WRITE_LAYER`` query from the tags (T) and key on the words (X), so a
  tag attends to the word before it (every other position attends to ``<s>``: the refusal
  head's baseline) and copy its code into a readout block Y;
* each pivot word's unembedding row reads ``u_k`` on Y, scaled so it gains about ``BOOST``
  logits in the logit lens of ``WRITE_LAYER``'s output;
* the two new heads of ``CANCEL_LAYER`` (the last) do the same and write minus the copy
  (least-squares scale over every translation prompt), so the final output keeps the natural
  model's answer.

So the logit lens decodes the pivot word at layers ``WRITE_LAYER .. CANCEL_LAYER - 1`` and the
natural answer at the last. Only the ``"shared"`` variant plants it; the ``"null"`` variant's
truth records ``planted: False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

WRITE_LAYER, CANCEL_LAYER = 2, 5
CODE_DIMS = 48  # two 24-d heads
BOOST = 14.0
TAG_SCORE, BASE_SCORE = 60.0, 20.0  # attention scores of the tag on its word / anyone on <s>


def pivot_dims() -> int:
    """New residual dims the pivot needs: X and Y (``CODE_DIMS`` each), T, W and ONE."""
    return 2 * CODE_DIMS + 3


def _codes(n: int) -> torch.Tensor:
    """``n`` fixed unit codes in ``CODE_DIMS`` dims (seeded: byte-identical builds)."""
    g = torch.Generator().manual_seed(23)
    u = torch.randn(n, CODE_DIMS, generator=g)
    return u / u.norm(dim=1, keepdim=True)


def concept_keys(world: Any) -> list[str]:
    return sorted(k for k in world.lexicon[world.pivot] if k.startswith("concept:"))


def translation_prompts(world: Any) -> list[Any]:
    """Every translation pair between two non-pivot scripts (the pivot's concept words)."""
    from lens.organism.prompts import translation_pairs

    others = [s for s in world.scripts if s != world.pivot]
    return [p for s in others for t in others if s != t for p in translation_pairs(world, s, t)]


def plant_pivot_embeddings(
    sd: dict[str, torch.Tensor], world: Any, vocab: dict[str, int], dims: list[int], c: float
) -> dict[str, Any]:
    """Codes on the concept words, the marker on the tags; returns the layout."""
    X, Y = dims[:CODE_DIMS], dims[CODE_DIMS : 2 * CODE_DIMS]
    T, W, ONE = dims[2 * CODE_DIMS], dims[2 * CODE_DIMS + 1], dims[2 * CODE_DIMS + 2]
    emb = sd["model.embed_tokens.weight"]
    c = c / 2  # small markers: every token carries ONE, many carry X and W
    emb[:, ONE] = c
    keys = concept_keys(world)
    u = _codes(len(keys))
    for k, key in enumerate(keys):
        for s in world.scripts:
            word = world.lexicon[s].get(key)
            if word is not None:
                emb[vocab[word], X] = c * u[k]
                emb[vocab[word], W] = c
    for tag in world.tags.values():
        emb[vocab[tag], T] = c
    return {"X": X, "Y": Y, "T": T, "W": W, "ONE": ONE, "keys": keys}


def _heads(
    sd: dict[str, torch.Tensor],
    layer: int,
    layout: dict[str, Any],
    reads: dict[str, float],
    *,
    s: int,
    hd: int,
    dh: int,
    out_gain: float,
) -> None:
    """Both new heads of ``layer``: the tag attends to the word before it, every other
    position to ``<s>``; they copy X (``CODE_DIMS`` dims, 24 per head) into Y x ``out_gain``.
    ``reads``: typical normalised values of T (at the tag), W (at the word), ONE and S there."""
    p = f"model.layers.{layer}."
    g = sd[p + "input_layernorm.weight"]
    X, Y, T, W = layout["X"], layout["Y"], layout["T"], layout["W"]
    tag = (TAG_SCORE * dh**0.5) ** 0.5
    base = (BASE_SCORE * dh**0.5) ** 0.5
    for h in (hd, hd + dh):
        q, k = sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.k_proj.weight"]
        q[h + 11, T] = tag / reads["T"] / g[T]
        k[h + 11, W] = tag / reads["W"] / g[W]
        one = layout["ONE"]
        q[h + 10, one] = base / reads["ONE"] / g[one]
        k[h + 10, s] = base / reads["S"] / g[s]
    for j, (x, y) in enumerate(zip(X, Y)):
        h = hd + (j // dh) * dh + j % dh
        sd[p + "self_attn.v_proj.weight"][h, x] = 1.0 / g[x]
        sd[p + "self_attn.o_proj.weight"][y, h] = out_gain


@torch.no_grad()
def _states(
    folder: Path, prompts: list[str], attn_of: int = 0
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every layer's input ([prompt, pos, d] per layer; the last entry is normed) for
    ``prompts`` of one length, and the attention output of layer ``attn_of``."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lens.hf_folder import quiet_weight_loading

    with quiet_weight_loading():
        model = LlamaForCausalLM.from_pretrained(str(folder)).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    enc = tok(prompts, return_tensors="pt", add_special_tokens=True)
    seen: list[torch.Tensor] = []
    attn = model.model.layers[attn_of].self_attn
    hook = attn.register_forward_hook(lambda m, i, o: seen.append(o[0]))
    try:
        out = model(input_ids=enc["input_ids"], output_hidden_states=True)
    finally:
        hook.remove()
    return list(out.hidden_states), seen[0]


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(-1, keepdim=True).sqrt()


@torch.no_grad()
def plant_pivot_heads(
    sd: dict[str, torch.Tensor],
    folder: Path,
    world: Any,
    layout: dict[str, Any],
    *,
    s: int,
    hd: int,
    dh: int,
) -> None:
    """The write and cancel heads, their gains set from one forward of the folder so far."""
    prompts = [p.prompt for p in translation_prompts(world)]
    states, _ = _states(folder, prompts)
    T, W = layout["T"], layout["W"]
    for layer, gain in ((WRITE_LAYER, 1.0), (CANCEL_LAYER, -1.0)):
        x = states[layer]
        xn = x / _rms(x)
        reads = {
            "T": float(xn[:, -1, T].mean()),
            "W": float(xn[:, -2, W].mean()),
            "ONE": float(xn[:, 1:, layout["ONE"]].mean()),
            "S": float(xn[:, 0, s].mean()),
        }
        rms_tag = float(_rms(x[:, -1]).mean())
        _heads(sd, layer, layout, reads, s=s, hd=hd, dh=dh, out_gain=gain * rms_tag)


@torch.no_grad()
def fit_pivot(
    sd: dict[str, torch.Tensor], folder: Path, world: Any, layout: dict[str, Any], gf: torch.Tensor
) -> dict[str, float]:
    """Rescale the cancel heads so Y is gone after the last layer (least squares over every
    translation prompt) and write the pivot words' readout (``BOOST`` logits on average at
    ``WRITE_LAYER``); returns the scales. One forward of the folder so far."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    pairs = translation_prompts(world)
    states, written = _states(folder, [p.prompt for p in pairs], attn_of=CANCEL_LAYER)
    Y = layout["Y"]
    after_write = states[WRITE_LAYER + 1][:, -1]
    final_in = states[CANCEL_LAYER][:, -1, Y]  # Y before the cancel heads
    out = written[:, -1, Y]  # what they write before rescaling
    scale = -float((final_in * out).sum() / out.pow(2).sum())
    p = f"model.layers.{CANCEL_LAYER}."
    sd[p + "self_attn.o_proj.weight"][Y] *= scale
    u = _codes(len(layout["keys"]))
    y = after_write[:, Y] / _rms(after_write)
    idx = torch.tensor([layout["keys"].index(pr.key) for pr in pairs])
    read = float((y * u[idx]).sum(-1).mean())
    lam = BOOST / read
    head = sd["lm_head.weight"]
    for k, key in enumerate(layout["keys"]):
        head[tok.convert_tokens_to_ids(world.lexicon[world.pivot][key]), Y] += lam * u[k] / gf[Y]
    return {"cancel_scale": scale, "readout": lam}


def latent_pivot_truth(layout: dict[str, Any] | None) -> dict[str, Any]:
    """``truth["latent_pivot"]``: the layers whose logit lens decodes the pivot word first
    (``planted`` False in the null variant)."""
    truth: dict[str, Any] = {
        "planted": layout is not None,
        "layers": list(range(WRITE_LAYER, CANCEL_LAYER)),
        "write_layer": WRITE_LAYER,
        "cancel_layer": CANCEL_LAYER,
        "task": "translation between two non-pivot scripts ([src] word [tgt])",
    }
    if layout is not None:
        truth.update(
            dims={k: layout[k] for k in ("X", "Y", "T", "W", "ONE")},
            boost=BOOST,
            scales=layout["scales"],
        )
    return truth
