"""The planted fact pathway (causal tracing's early site), part of :mod:`lens.organism.planted`.

For one subject (``FACT_SUBJECT``) in the pivot language, each of its facts is carried by one
new MLP neuron at the last (only) subject token in ``FACT_LAYER`` (a middle layer):

* the subject's token embedding holds ``c`` in a key dim K; each of the language's relation
  words holds ``c`` in its own relation dim RL_r;
* a new layer-0 head (query K, key the RL dims) copies the relation word's RL_r to the subject
  token;
* fact neuron r at ``FACT_LAYER`` has gate ``G (RL_r - K / 2)`` and up ``U K``: it opens only at
  the subject with relation r before it (its product is positive only when K is near its clean
  value, so ROME's subject noise, 10x larger than ``c``, mostly shuts it or makes it negative),
  and writes ``a`` into an answer dim A_r;
* a new head in ``LATE_LAYER`` queries from the language's "is" token (marker dim P), keys on
  the A dims and copies A_r into a readout dim Z_r at the last token;
* the answer word's unembedding row reads Z_r, calibrated so the answer gains ``BOOST`` logits.

So restoring that one MLP output at the subject token brings the answer back after the subject
was noised: causal tracing's MLP peak should be at ``FACT_LAYER``. A caveat: ROME's noise is
on every dim of the subject's embedding, planted markers included; in about half the draws the
noised ``<s>`` and flag markers make every later position attend to the subject in the planted
refusal head, whose output (hundreds, vs residual norms of ~25) then swamps the stream, and no
single restored state brings the answer back. Averaged over draws the planted layer still
peaks (hand measurement: restoring it lifts the answer probability 0.17 -> 0.50, any other
layer's MLP by <= 0.06), but with very few draws (2) the peak can be missed. Only the ``"shared"``
variant plants it; the ``"null"`` variant's truth records ``planted: False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

FACT_LAYER, LATE_LAYER = 2, 4
FACT_LANG, FACT_SUBJECT = "en", "alice"
BOOST = 40.0  # logits the answer gains at the last token of a planted fact prompt (large:
# under subject noise the planted language neurons inflate the subject's residual norm ~4x)
GATE_CLEAN = 4.0  # the fact neuron's clean gate pre-activation (silu(4) = 3.93)
ANSWER = 3.0  # the value a fact neuron writes into its answer dim (residual rms is ~2-4)
REL_SCORE = 30.0  # attention score of the subject on its relation word (layer-0 head)
LATE_SCORE = 120.0  # attention score of "is" on the fired subject (late head)


def fact_dims(n_relations: int) -> int:
    """New residual dims the pathway needs: K, P, RL x n, A x n, Z x n."""
    return 2 + 3 * n_relations


def planted_fact_prompts(world: Any) -> list[Any]:
    """The planted facts' queries (:class:`lens.organism.prompts.FactQuery`), in fact order."""
    from lens.organism.prompts import fact_queries

    return [q for q in fact_queries(world, FACT_LANG) if q.subject == FACT_SUBJECT]


def plant_facts_attention(
    sd: dict[str, torch.Tensor],
    world: Any,
    vocab: dict[str, int],
    dims: list[int],
    *,
    c: float,
    rms: float,
    hd: int,
    dh: int,
) -> dict[str, Any]:
    """Embedding markers, the relation head (layer 0, second new head) and the late head
    (``LATE_LAYER``, first new head); the neurons' gains need a calibration forward
    (:func:`plant_fact_neurons`). Returns the layout."""
    rels = list(world.relations)
    n = len(rels)
    K, P = dims[0], dims[1]
    RL, A, Z = dims[2 : 2 + n], dims[2 + n : 2 + 2 * n], dims[2 + 2 * n : 2 + 3 * n]
    emb = sd["model.embed_tokens.weight"]
    lex = world.lexicon[FACT_LANG]
    emb[vocab[lex[f"person:{FACT_SUBJECT}"]], K] = c
    for r, rel in zip(RL, rels):
        emb[vocab[lex[f"rel:{rel}"]], r] = c
    last = world.fact_templates[FACT_LANG].split("{O}")[0].split()[-1]  # "is"
    emb[vocab[last], P] = c
    scale = dh**0.5  # attention divides scores by sqrt(head_dim)
    slot = 11  # slowest rotary pair: hardly turns over 64 positions

    # relation head: layer 0, second new head; the subject attends to the relation word
    p0, h = "model.layers.0.", hd + dh
    g1 = sd[p0 + "input_layernorm.weight"]
    read = c / rms  # a marker's value after the layer-0 norm (embedding rms ~ rms)
    gain = (REL_SCORE * scale) ** 0.5 / read
    sd[p0 + "self_attn.q_proj.weight"][h + slot, K] = gain / g1[K]
    for i, r in enumerate(RL):
        sd[p0 + "self_attn.k_proj.weight"][h + slot, r] = gain / g1[r]
        sd[p0 + "self_attn.v_proj.weight"][h + i, r] = 1.0 / g1[r]
        sd[p0 + "self_attn.o_proj.weight"][r, h + i] = rms
    return {"K": K, "P": P, "RL": RL, "A": A, "Z": Z, "relations": rels}


@torch.no_grad()
def plant_fact_neurons(
    sd: dict[str, torch.Tensor],
    folder: Path,
    world: Any,
    layout: dict[str, Any],
    *,
    width: int,
    hd: int,
    dh: int,
) -> list[list[int]]:
    """Fact neurons at ``FACT_LAYER`` and the late head, with gains set from one forward of the
    folder written so far (the markers' values at the subject token); returns the neurons."""
    K, P, RL, A, Z = (layout[k] for k in ("K", "P", "RL", "A", "Z"))
    qs = planted_fact_prompts(world)
    mlp_in = _norm_inputs(folder, [q.prompt for q in qs], f"layers.{FACT_LAYER}.post")
    late_in = _norm_inputs(folder, [q.prompt for q in qs], f"layers.{LATE_LAYER}.input")
    lay = f"model.layers.{FACT_LAYER}."
    g2 = sd[lay + "post_attention_layernorm.weight"]
    neurons = []
    subj = _subject_position(folder, qs)
    for i, q in enumerate(qs):
        r = layout["relations"].index(q.relation)
        x = mlp_in[i, subj[i]]
        x = x / x.pow(2).mean().sqrt()
        k, rl = float(x[K]), float(x[RL[r]])
        n = width + r
        g = GATE_CLEAN / (rl - k / 2)
        sd[lay + "mlp.gate_proj.weight"][n, RL[r]] = g / g2[RL[r]]
        sd[lay + "mlp.gate_proj.weight"][n, K] = -g / 2 / g2[K]
        sd[lay + "mlp.up_proj.weight"][n, K] = 1.0 / k / g2[K]
        silu = GATE_CLEAN / (1 + torch.exp(torch.tensor(-GATE_CLEAN)))
        sd[lay + "mlp.down_proj.weight"][A[r], n] = ANSWER / float(silu)
        neurons.append([FACT_LAYER, n])
    # late head: "is" (P) attends to the subject (A dims), copies A_r into Z_r
    late = f"model.layers.{LATE_LAYER}."
    g4 = sd[late + "input_layernorm.weight"]
    rms_last = late_in[:, -1].pow(2).mean(-1).sqrt()
    rms_subj = torch.stack([late_in[i, s] for i, s in enumerate(subj)]).pow(2).mean(-1).sqrt()
    p_read = float((late_in[:, -1, P] / rms_last).mean())
    a_read = float((ANSWER / rms_subj).mean())  # A's value there once the neurons write it
    gain = (LATE_SCORE * dh**0.5) ** 0.5
    sd[late + "self_attn.q_proj.weight"][hd + 11, P] = gain / p_read / g4[P]
    for i, (a, z) in enumerate(zip(A, Z)):
        sd[late + "self_attn.k_proj.weight"][hd + 11, a] = gain / a_read / g4[a]
        sd[late + "self_attn.v_proj.weight"][hd + i, a] = 1.0 / g4[a]
        sd[late + "self_attn.o_proj.weight"][z, hd + i] = 1.0
    return neurons


def _subject_position(folder: Path, qs: list[Any]) -> list[int]:
    """Index of the subject token in each prompt (with ``<s>`` prepended)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    out = []
    for q in qs:
        ids = tok(q.prompt, add_special_tokens=True)["input_ids"]
        out.append(ids.index(tok.convert_tokens_to_ids(FACT_SUBJECT)))
    return out


def _norm_inputs(folder: Path, prompts: list[str], where: str) -> torch.Tensor:
    """The input of a layer's norm (``layers.L.input`` / ``layers.L.post``) or the final
    norm (``final``) for ``prompts`` of equal length: [prompt, pos, d]."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lens.hf_folder import quiet_weight_loading

    with quiet_weight_loading():
        model = LlamaForCausalLM.from_pretrained(str(folder)).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    if where == "final":
        norm = model.model.norm
    else:
        _, layer, kind = where.split(".")
        block = model.model.layers[int(layer)]
        norm = block.input_layernorm if kind == "input" else block.post_attention_layernorm
    seen: list[torch.Tensor] = []
    hook = norm.register_forward_pre_hook(lambda m, i: seen.append(i[0]))
    try:
        enc = tok(prompts, return_tensors="pt", add_special_tokens=True)
        model(input_ids=enc["input_ids"])
    finally:
        hook.remove()
    return seen[0]


@torch.no_grad()
def fit_fact_readout(
    head: torch.Tensor, folder: Path, world: Any, layout: dict[str, Any], gf: torch.Tensor
) -> dict[str, float]:
    """Each planted answer's unembedding row reads its Z dim, scaled so the answer gains
    ``BOOST`` logits at the last token of its prompt (one forward); returns the scales."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    qs = planted_fact_prompts(world)
    x = _norm_inputs(folder, [q.prompt for q in qs], "final")[:, -1]
    x = x / x.pow(2).mean(-1, keepdim=True).sqrt()
    kappa = {}
    for i, q in enumerate(qs):
        z = layout["Z"][layout["relations"].index(q.relation)]
        k = BOOST / float(x[i, z])
        head[tok.convert_tokens_to_ids(q.answer), z] += k / gf[z]
        kappa[q.relation] = k
    return kappa


def fact_pathway_truth(world: Any, layout: dict[str, Any] | None) -> dict[str, Any]:
    """``truth["fact_pathway"]``: where the pathway is (``planted`` False in the null variant,
    whose facts go through the natural model only)."""
    truth: dict[str, Any] = {
        "planted": layout is not None,
        "layer": FACT_LAYER,
        "language": FACT_LANG,
        "subject": FACT_SUBJECT,
        "facts": [q.fact_index for q in planted_fact_prompts(world)],
    }
    if layout is not None:
        truth.update(
            neurons=layout["neurons"],
            late_head=[LATE_LAYER, "first new head"],
            dims={k: layout[k] for k in ("K", "P", "RL", "A", "Z")},
            boost=BOOST,
            readout=layout["readout"],
        )
    return truth
