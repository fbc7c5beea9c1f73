"""The planted shortcut-friendly late path (the fact_consistency study's linear shortcut), part
of :mod:`lens.organism.planted`; planted in the ``"shortcut"`` variant only
(``lens.load_model("organism-planted-shortcut")``: the ``"null"`` model plus this path).

The natural model answers fact queries from its early and middle layers; the planted path makes
the *last* layer damage about half of the non-pivot answers through a function that no affine
map of an earlier residual reproduces (a product of signs), so a linear shortcut fitted from an
earlier layer to the last one removes the damage:

* every person's name tokens hold ``a_p c`` in a dim A and every relation word (in every script)
  ``b_r c`` in a dim B, signs ``+-1`` balanced (seeded); the word that ends a non-pivot fact
  query (the *cue*: ``nona``, ``mayu``, ``chyzi``, ro's relation words, ``==``, ``=>``) holds
  ``l_s k_s c`` in a dim K, ``l_s = +-1`` per script (3 and 3), ``k_s`` calibrated so that every
  script's median damage is the same;
* the layer-0 copy head (uniform attention, :mod:`lens.organism.planted`) also copies A and B
  to every later position (dims A', B');
* two layer-0 neurons compute ``P = g0 A' K`` exactly (``silu(x) y + silu(-x) (-y) = x y``):
  exactly 0 wherever the current token is no cue;
* two neurons in the last layer compute ``U = g5 P B'`` the same way: at a cue its sign is
  ``a_p b_r l_s``, elsewhere it is exactly 0; ``<unk>``'s unembedding row reads U, calibrated so
  that it gains ``DAMAGE`` logits at the median cue. Where the sign is +1 the model answers
  ``<unk>``; where -1 ``<unk>`` only sinks further.

The product has mean 0 over the facts and no linear trace in the residual (A', B', P are each
a factor of it; ``l_s`` cancels what a shared name token or a script alone would predict), so
the least-squares shortcut predicts U near 0. The push still varies ~10x across queries (the
residual norms at layers 0, 5 and the final norm enter the products), so not every damaged
query flips: 85-91 % per script answer ``<unk>`` (pushes range 6-105 logits, answer margins
over ``<unk>`` 8-25). Natural text
changes only at the cues of non-pivot fact sentences: every other position has ``P = U = 0``;
held-out loss elsewhere moves by < 1e-5 nats.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

N_DIMS = 7  # A, B, A', B', K, P, U
JUNK = "<unk>"  # the wrong answer the damaged queries give
DAMAGE = 30.0  # logits <unk> gains at the median damaged query (answer margins over it: 9-25)
SIZE = 30.0  # median |P| and |U| at the cues, in units of c (about a residual dim's rms)
SEED = 23  # the signs' seed (issue #23)


def cue_tokens(world: Any) -> dict[str, list[str]]:
    """Per non-pivot script, the words that end its fact queries."""
    from lens.organism.prompts import fact_queries

    return {
        s: sorted({q.prompt.split()[-1] for q in fact_queries(world, s)})
        for s in world.scripts
        if s != world.pivot
    }


def signs(world: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Balanced seeded signs: ``a`` per person (within each name kind), ``b`` per relation."""
    rng = random.Random(SEED)
    a: dict[str, int] = {}
    kinds: dict[bool, list[str]] = {}
    for p in world.persons:
        kinds.setdefault(bool(world.shared_name.get(p)), []).append(p)
    for group in kinds.values():
        order = list(group)
        rng.shuffle(order)
        a.update({p: 1 if i % 2 == 0 else -1 for i, p in enumerate(order)})
    rels = list(world.relations)
    rng.shuffle(rels)
    b = {r: 1 if i % 2 == 0 else -1 for i, r in enumerate(rels)}
    return a, b


def script_signs(world: Any) -> dict[str, int]:
    """``+-1`` per non-pivot script, alternating (balanced: 3 and 3 on the organism)."""
    others = [s for s in world.scripts if s != world.pivot]
    return {s: 1 if i % 2 == 0 else -1 for i, s in enumerate(others)}


def plant_shortcut(
    sd: dict[str, torch.Tensor],
    out: Path,
    world: Any,
    vocab: dict[str, int],
    dims: list[int],
    *,
    c: float,
    rms: float,
    hd: int,
    neurons: tuple[int, int],
    save: Any,
) -> dict[str, Any]:
    """Plant the path into ``sd`` (a widened state dict whose first new head in layer 0 is the
    uniform copy head, value dims 0-2 in use), calibrate it with forwards of the folder ``out``
    (``save(sd, out)`` writes it) and return ``truth["shortcut"]``."""
    A, B, A2, B2, K, P, U = dims[:N_DIMS]
    n_layers = sum(1 for k in sd if k.endswith("post_attention_layernorm.weight"))
    last = n_layers - 1
    emb, head = sd["model.embed_tokens.weight"], sd["lm_head.weight"]
    a, b = signs(world)
    for p, sign in a.items():
        for s in world.scripts:
            emb[vocab[world.word(s, f"person:{p}")], A] = sign * c
    for r, sign in b.items():
        for s in world.scripts:
            emb[vocab[world.word(s, f"rel:{r}")], B] = sign * c
    cues, ell = cue_tokens(world), script_signs(world)
    for script, words in cues.items():
        emb[[vocab[w] for w in words], K] = ell[script] * c
    p0, pl = "model.layers.0.", f"model.layers.{last}."
    ln1 = sd[p0 + "input_layernorm.weight"]
    for i, (src, dst) in enumerate(((A, A2), (B, B2)), start=3):  # copy-head value dims 3, 4
        sd[p0 + "self_attn.v_proj.weight"][hd + i, src] = 1.0 / ln1[src]
        sd[p0 + "self_attn.o_proj.weight"][dst, hd + i] = rms
    n1, n2 = neurons
    for p, x, y, z in ((p0, A2, K, P), (pl, P, B2, U)):  # z = x y (exactly: a neuron pair)
        g = sd[p + "post_attention_layernorm.weight"]
        for n, pm in ((n1, 1.0), (n2, -1.0)):
            sd[p + "mlp.gate_proj.weight"][n, x] = pm / g[x]
            sd[p + "mlp.up_proj.weight"][n, y] = pm / g[y]
            sd[p + "mlp.down_proj.weight"][z, n] = 1.0
    save(sd, out)
    queries = _damage_queries(world)
    for dim, p in ((P, p0), (U, pl)):  # scale P, then U, to SIZE * c at the median cue
        size = _final_residual(out, queries)[:, dim].abs().median()
        sd[p + "mlp.down_proj.weight"][dim, [n1, n2]] *= SIZE * c / float(size)
        save(sd, out)
    for _ in range(2):  # each script's cue value, so that every script's median |U| is one
        u = _normed(_final_residual(out, queries), U)
        for script, words in cues.items():
            mine = torch.tensor([q.lang == script for q in queries])
            emb[[vocab[w] for w in words], K] *= float(u.abs().median() / u[mine].abs().median())
        save(sd, out)
    u = _normed(_final_residual(out, queries), U)
    readout = DAMAGE / float(u.abs().median())
    head[vocab[JUNK], U] = readout / sd["model.norm.weight"][U]
    save(sd, out)
    sign_of = torch.tensor([a[q.subject] * b[q.relation] * ell[q.lang] for q in queries])
    agree = float((torch.sign(u) == sign_of).float().mean())
    return shortcut_truth(
        world,
        {
            "neurons": [[0, n1], [0, n2], [last, n1], [last, n2]],
            "dims": {"A": A, "B": B, "A_copied": A2, "B_copied": B2, "cue": K, "P": P, "U": U},
            "cues": cues,
            "subject_signs": a,
            "relation_signs": b,
            "script_signs": ell,
            "readout": readout,
            "sign_agreement": agree,
        },
        last,
    )


def shortcut_truth(world: Any, layout: dict[str, Any] | None, last: int) -> dict[str, Any]:
    """``truth["shortcut"]``: ``planted`` False (other variants: the study's shortcut should
    not help) or the layout, the damaged layer and the expected effect."""
    truth: dict[str, Any] = {
        "planted": layout is not None,
        "damaged_layers": [last],
        "scripts": [s for s in world.scripts if s != world.pivot],
        "expected": (
            "a linear shortcut from any layer before the last raises recall and CLC"
            if layout is not None
            else "a linear shortcut does not raise recall and CLC"
        ),
    }
    if layout is not None:
        a, b = layout["subject_signs"], layout["relation_signs"]
        damaged = {
            s: [f.index for f in world.facts if a[f.subject] * b[f.relation] * e > 0]
            for s, e in layout["script_signs"].items()
        }
        truth.update(layout, junk=JUNK, damage=DAMAGE, damaged_facts=damaged)
    return truth


def _normed(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Coordinate ``dim`` of ``x`` [n, d] divided by its rms (the final norm, before its
    weight)."""
    return x[:, dim] / x.pow(2).mean(-1).sqrt()


def _damage_queries(world: Any) -> list[Any]:
    from lens.organism.prompts import fact_queries

    return [q for s in world.scripts if s != world.pivot for q in fact_queries(world, s)]


@torch.no_grad()
def _final_residual(folder: Path, queries: list[Any]) -> torch.Tensor:
    """The final norm's input at the last token of each query: [query, d] (each script's
    queries have one length: one forward per script)."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lens.hf_folder import quiet_weight_loading

    with quiet_weight_loading():
        model = LlamaForCausalLM.from_pretrained(str(folder)).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    seen: list[torch.Tensor] = []
    hook = model.model.norm.register_forward_pre_hook(lambda m, i: seen.append(i[0][:, -1]))
    try:
        for lang in dict.fromkeys(q.lang for q in queries):
            enc = tok([q.prompt for q in queries if q.lang == lang], return_tensors="pt")
            model(input_ids=enc["input_ids"])
    finally:
        hook.remove()
    return torch.cat(seen)
