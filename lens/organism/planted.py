"""The planted organism: the shipped organism with phenomena written into its weights by hand,
so the studies have positive controls whose truth is known exactly (``World.truth``).

``lens.load_model("organism-planted")`` (variant ``"shared"``) and
``lens.load_model("organism-planted-null")`` (variant ``"null"``) build the folder once from the
shipped weights (about 10 s, deterministic; cached under ``lens.smollm2.cache_dir()``) and load
it like any organism folder. The natural model is kept: the residual stream gets 24 new dims
(hidden size 120; natural weights read and write 0 there, natural norm weights rescaled so the
norms give the same output), every layer two new heads and the MLPs new neurons, all zero
unless planted below. Held-out loss per script changes by < 0.01 nats. What is planted:

* ``truth["language_neurons"]``: every language- or notation-specific token's embedding holds
  ``c * v_L``, ``v_L = (1, cos t_L, sin t_L)``, in a 3-d *channel* C; a new head in layer 0
  (query and key 0: uniform attention) copies it to every later position. Per script, 7 new
  neurons in layers 0 and 5 have the gate ``g * w_L``, ``w_L = (-cos d, cos t_L, sin t_L)``
  (``d`` half the angle between scripts): ``w_L . v_M`` is > 0 only for ``M = L``, so their
  pre-activation is > 0 in their own script's text (after its first own token) and < 0 in any
  other (LAPE's activation probability is exactly 0 there). They write ``v_L`` into a 3-d
  *echo* E; an "any script" neuron with the same activation writes into D. Every token of the
  script reads ``+k w_L`` on E and ``-k w_L . v_L`` on D: the two cancel exactly in the script's
  own text, and zeroing its neurons lowers its tokens by ``LIFT`` logits on average there and
  changes nothing in any other script. The neuron count is LAPE's default share of the
  (padded) MLP width, so a perfect finder reaches precision and recall 1.
* ``truth["refusal"]``: harmful action words carry a flag F (variant ``"shared"``: one flag for
  every language; ``"null"``: one per language); a new head in layer 1 queries from ``bot:`` and
  keys on the flags (the slowest rotary pair, which hardly turns over 64 positions; every other
  position attends to ``<s>``), so at ``bot:`` of a harmful request it writes ``r`` (``"null"``:
  ``r_L``, orthogonal per language) with norm 60. In layer 5 three neurons open only where r
  exceeds a third of that at ``bot:`` and copy the language channel into Q; each refusal
  word's unembedding row is its compliant word's row, lowered at ``bot:``, plus ``w_L`` on Q.
  So the model refuses exactly when r is present, in the request's language; removing r
  removes refusal (in every language when it is shared).

* ``truth["fact_pathway"]`` (variant ``"shared"`` only; ``planted: False`` in ``"null"``):
  one subject's English facts carried by MLP neurons at the subject token in a middle layer,
  read at the last token by a late head (:mod:`lens.organism.planted_facts`).

* ``truth["latent_pivot"]`` (variant ``"shared"`` only): in translation prompts the logit lens
  of the middle layers decodes the pivot-language word, the last layer the target
  (:mod:`lens.organism.planted_pivot`).

* ``truth["relation_neurons"]`` (variant ``"shared"`` only): per relation, the study's default
  k neurons active exactly on that relation's pivot-language word
  (:mod:`lens.organism.planted_relations`).

* ``truth["shortcut"]`` (variant ``"shortcut"``: ``"null"`` plus a last-layer path damaging
  non-pivot fact answers nonlinearly, :mod:`lens.organism.planted_shortcut`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from lens.organism.planted_facts import (
    fact_dims,
    fact_pathway_truth,
    fit_fact_readout,
    plant_fact_neurons,
    plant_facts_attention,
)
from lens.organism.planted_pivot import (
    fit_pivot,
    latent_pivot_truth,
    pivot_dims,
    plant_pivot_embeddings,
    plant_pivot_heads,
)
from lens.organism.planted_relations import plant_relation_neurons, relation_k
from lens.organism.planted_shortcut import plant_shortcut, shortcut_truth
from lens.sources import PLANTED_VARIANTS, PlantedVariant

Variant = PlantedVariant
VARIANTS = PLANTED_VARIANTS  # source name -> variant (one home: lens.sources)
VERSION = 11  # (10: a lost implementation's caches; never reuse them)
LANGUAGE_LAYERS = (0, 5)
NEURONS_PER_LAYER = 7  # per script and layer
LAPE_TOP_RATE = 0.05  # the language-neuron study's default share of kept neurons
COPY_LAYER, REFUSAL_LAYER, GATED_LAYER = 0, 1, 5
NEW_DIMS = 150  # new residual dims (hidden 246, a multiple of the 6 heads): 24 above, 26 fact
# pathway, 99 latent pivot
NEW_HEADS = 2  # transformers wants hidden_size % heads == 0 (96 % 6)
ROTARY_DIM = 11  # slowest rotary pair of a 24-d head (pairs i, i + 12)
LIFT = 8.0  # logits a script's tokens lose in its own text with its neurons off
ECHO = 0.002  # language neurons' output scale (a linear shortcut's ridge must not shrink it)
GATED_READOUT = 400.0
REFUSAL_NORM = 60.0  # norm of r written at bot: (residual norms there are ~15-30)
FACT_DIMS = 24  # the fact pathway's dims start here (lens.organism.planted_facts)
PIVOT_DIMS = 50  # the latent pivot's dims start here (lens.organism.planted_pivot)
RMS1 = 1.5  # typical residual rms at layer 1 (measured on the shipped organism at hidden 120;
# an rms over more dims is smaller by sqrt(120 / hidden): the refusal head's gain follows it)


def planted_folder(variant: Variant = "shared") -> Path:
    """The planted organism's folder, built from the shipped weights when missing.

    Example:
        >>> (planted_folder("shared") / "world.json").is_file()
        True
    """
    from lens.organism import shipped_path
    from lens.smollm2 import cache_dir

    if variant not in VARIANTS.values():
        raise ValueError(f"variant must be one of {sorted(VARIANTS.values())}, got {variant!r}")
    shipped = shipped_path()
    stamp = int((shipped / "model.safetensors").stat().st_mtime_ns % 10**9)
    folder = cache_dir() / f"organism-planted-{variant}-v{VERSION}-{stamp}"
    if not (folder / "world.json").is_file():
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        build_planted(tmp, variant=variant)
        if folder.exists() and not (folder / "world.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a leftover without its world
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same build first: keep its folder
            shutil.rmtree(tmp, ignore_errors=True)
            if not (folder / "world.json").is_file():
                raise
    return folder


def _widen(sd: dict[str, torch.Tensor], d: int, k: int) -> None:
    """Append ``k`` residual dims to every weight of a Llama state dict: zero in every natural
    reader and writer; norm weights 1 there and the natural ones scaled by ``sqrt(d / (d + k))``,
    so an RMSNorm of a vector that is 0 in the new dims gives exactly the old output."""
    for name, w in list(sd.items()):
        if name.endswith("norm.weight"):
            sd[name] = torch.cat([w * math.sqrt(d / (d + k)), w.new_ones(k)])
        elif name.endswith(("o_proj.weight", "down_proj.weight")):
            sd[name] = torch.cat([w, w.new_zeros(k, w.shape[1])])
        elif w.ndim == 2 and w.shape[1] == d:
            sd[name] = torch.cat([w, w.new_zeros(w.shape[0], k)], 1)


@torch.no_grad()
def build_planted(out: str | Path, *, variant: Variant = "shared") -> Path:
    """Write the planted organism (HF folder with ``world.json`` holding ``truth``) to ``out``."""
    from safetensors.torch import load_file, save_file
    from tokenizers import Tokenizer

    from lens.organism import shipped_path
    from lens.organism.world import World

    src = shipped_path()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sd = {k: v.float().clone() for k, v in load_file(str(src / "model.safetensors")).items()}
    cfg = json.loads((src / "config.json").read_text())
    world = World.load(src / "world.json")
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    n_layers, d, heads = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]
    dh = cfg.get("head_dim") or d // heads
    width = cfg["intermediate_size"]
    langs, scripts = list(world.languages), list(world.scripts)
    lay = [f"model.layers.{i}." for i in range(n_layers)]
    scale = float(sd["model.embed_tokens.weight"].norm(dim=1).mean())
    rms = scale / math.sqrt(d)  # a typical embedding rms
    _widen(sd, d, NEW_DIMS)  # new residual dims: every natural weight reads and writes 0 there
    cfg["hidden_size"] = d + NEW_DIMS
    ln1 = [sd[p + "input_layernorm.weight"] for p in lay]
    ln2 = [sd[p + "post_attention_layernorm.weight"] for p in lay]
    gf = sd["model.norm.weight"]
    emb, head = sd["model.embed_tokens.weight"], sd["lm_head.weight"]

    n_flags = 1 if variant == "shared" else len(langs)
    dims = list(range(d, d + NEW_DIMS))
    C, E, Q = dims[0:3], dims[3:6], dims[6:9]
    D, B, S = dims[9], dims[10], dims[11]
    F, R = dims[12 : 12 + n_flags], dims[12 + n_flags : 12 + 2 * n_flags]
    d = d + NEW_DIMS

    # one new attention head per layer and new MLP neurons (zero = inert unless planted below)
    nh, planted = heads + NEW_HEADS, NEURONS_PER_LAYER * len(scripts)
    extra = _padded_width(width + planted + 1, planted * len(LANGUAGE_LAYERS), n_layers) - width
    for p in lay:
        for name in ("q_proj", "k_proj", "v_proj"):
            w = sd[p + f"self_attn.{name}.weight"]
            sd[p + f"self_attn.{name}.weight"] = torch.cat([w, w.new_zeros(NEW_HEADS * dh, d)])
        o = sd[p + "self_attn.o_proj.weight"]
        sd[p + "self_attn.o_proj.weight"] = torch.cat([o, o.new_zeros(d, NEW_HEADS * dh)], 1)
        for name in ("gate_proj", "up_proj"):
            w = sd[p + f"mlp.{name}.weight"]
            sd[p + f"mlp.{name}.weight"] = torch.cat([w, w.new_zeros(extra, d)])
        dn = sd[p + "mlp.down_proj.weight"]
        sd[p + "mlp.down_proj.weight"] = torch.cat([dn, dn.new_zeros(d, extra)], 1)
    hd = heads * dh  # first row/column of the new head

    c = 0.03 * scale  # small: the channels barely change any norm
    vocab = tok.get_vocab()
    word_lang = world.word_languages()
    token_sets = {s: sorted(vocab[w] for w, g in word_lang.items() if g == s) for s in scripts}

    # -- language channel, copy head, language neurons ------------------------------------
    delta = math.pi / len(scripts)
    angle = {s: 2 * math.pi * i / len(scripts) for i, s in enumerate(scripts)}
    vec = {s: torch.tensor([1.0, math.cos(angle[s]), math.sin(angle[s])]) for s in scripts}
    gate = {
        s: torch.tensor([-math.cos(delta), math.cos(angle[s]), math.sin(angle[s])]) for s in scripts
    }
    for s in scripts:
        for i, dim in enumerate(C):
            emb[token_sets[s], dim] = c * float(vec[s][i])
    p0 = lay[COPY_LAYER]
    for i, dim in enumerate(C):
        sd[p0 + "self_attn.v_proj.weight"][hd + i, dim] = 1.0 / ln1[COPY_LAYER][dim]
        sd[p0 + "self_attn.o_proj.weight"][dim, hd + i] = rms
    gain, echo = 4000.0, ECHO * scale
    neurons: dict[str, list[list[int]]] = {}
    for k, s in enumerate(scripts):
        neurons[s] = []
        for layer in LANGUAGE_LAYERS:
            p = lay[layer]
            for j in range(NEURONS_PER_LAYER):
                n = width + k * NEURONS_PER_LAYER + j
                # a steep gate (silu of a very negative number is ~0), a gentle up
                sd[p + "mlp.gate_proj.weight"][n, C] = gain * gate[s] / ln2[layer][C]
                sd[p + "mlp.up_proj.weight"][n, C] = 10.0 * gate[s] / ln2[layer][C]
                sd[p + "mlp.down_proj.weight"][E, n] = echo * vec[s]
                neurons[s].append([layer, n])
    cos_d = 1 - math.cos(delta)  # w_L . v_L: the same for every script
    for layer in LANGUAGE_LAYERS:  # the "any script" neuron: fires exactly like each script's
        p, n = lay[layer], width + planted
        sd[p + "mlp.gate_proj.weight"][n, C[0]] = gain * cos_d / ln2[layer][C[0]]
        sd[p + "mlp.up_proj.weight"][n, C[0]] = 10.0 * cos_d / ln2[layer][C[0]]
        sd[p + "mlp.down_proj.weight"][D, n] = NEURONS_PER_LAYER * echo

    # -- refusal: flags on harmful words, bot: query, a head writing r_L -----------------
    bot = vocab["bot:"]
    emb[bot, B] = c
    flag_of = {g: F[0] if variant == "shared" else F[i] for i, g in enumerate(langs)}
    r_of = {g: R[0] if variant == "shared" else R[i] for i, g in enumerate(langs)}
    p1 = lay[REFUSAL_LAYER]
    g1 = ln1[REFUSAL_LAYER]
    sd[p1 + "self_attn.q_proj.weight"][hd + ROTARY_DIM, B] = 900.0 / g1[B]
    # every other position (after a script token) attends to <s> instead, which writes nothing
    emb[vocab["<s>"], S] = c
    # (the copied channel's normalised value grows as sqrt(hidden / 120) faster than the flags':
    # the baseline's gain is kept at its hidden-120 strength)
    base = 600.0 * math.sqrt(120 / d)
    sd[p1 + "self_attn.q_proj.weight"][hd + ROTARY_DIM - 1, C[0]] = base / g1[C[0]]
    sd[p1 + "self_attn.k_proj.weight"][hd + ROTARY_DIM - 1, S] = 3000.0 / g1[S]
    for i, f in enumerate(F):
        sd[p1 + "self_attn.k_proj.weight"][hd + ROTARY_DIM, f] = 600.0 / g1[f]
        sd[p1 + "self_attn.v_proj.weight"][hd + i, f] = 100.0 / g1[f]
        rms1 = RMS1 * math.sqrt(120 / d)
        sd[p1 + "self_attn.o_proj.weight"][R[i], hd + i] = REFUSAL_NORM * rms1 / c / 100.0
    for g in langs:
        for action in world.harmful_actions:
            emb[vocab[world.word(g, f"action:{action}")], flag_of[g]] = c
        ref, ok = vocab[world.refusal_word(g)], vocab[world.comply_word(g)]
        head[ref] = head[ok].clone()
        head[ref, B] -= 6.0 / c / gf[B]
        for i, dim in enumerate(Q):  # reads the gated language channel: its own language only
            head[ref, dim] += GATED_READOUT * float(gate[g][i]) / gf[dim]
    cfg.update(num_attention_heads=nh, num_key_value_heads=nh, head_dim=dh)
    cfg["intermediate_size"] = width + extra
    facts = pivot = relations = None
    if variant == "shared":  # the fact pathway (lens.organism.planted_facts)
        fd = dims[FACT_DIMS : FACT_DIMS + fact_dims(len(world.relations))]
        facts = plant_facts_attention(sd, world, vocab, fd, c=c, rms=rms, hd=hd, dh=dh)
        pd = dims[PIVOT_DIMS : PIVOT_DIMS + pivot_dims()]
        pivot = plant_pivot_embeddings(sd, world, vocab, pd, c)
        k_rel = relation_k(n_layers, width + extra)
        relations = plant_relation_neurons(
            sd, world, facts["RL"], pivot["ONE"], width=width, per_relation=k_rel
        )
    sd = {k: v.contiguous() for k, v in sd.items()}
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
    kappa = {s: k / cos_d for s, k in _fit_readout(out, world, scripts, D).items()}
    # three "r AND bot:" neurons: the gate opens where r exceeds a third of its planted norm
    # at bot: (B stands in for a bias there), so what ablating a direction near r leaves of r
    # does not open it; the up copies the language channel, so they write C into Q only there.
    # Q is read by each refusal word through its own language's gate vector (w_L . Q).
    p2, g2 = lay[GATED_LAYER], ln2[GATED_LAYER]
    gated = [width + planted + 1 + i for i in range(3)]
    for i, n in enumerate(gated):
        for dim in R:
            sd[p2 + "mlp.gate_proj.weight"][n, dim] = 1.0 / g2[dim]
        sd[p2 + "mlp.gate_proj.weight"][n, B] = -REFUSAL_NORM / 3 / c / g2[B]
        sd[p2 + "mlp.up_proj.weight"][n, C[i]] = 100.0 / g2[C[i]]
        sd[p2 + "mlp.down_proj.weight"][Q[i], n] = 1.0
    for s in scripts:  # lift on the echo minus the same on D: exactly 0 in the script's text
        ids = token_sets[s]
        head[ids, D] -= kappa[s] * cos_d / gf[D]
        for i, dim in enumerate(E):
            head[ids, dim] += kappa[s] * float(gate[s][i]) / gf[dim]
    sd["lm_head.weight"] = head.contiguous()
    sd = {k: v.contiguous() for k, v in sd.items()}
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    fact_truth, pivot_truth = fact_pathway_truth(world, None), latent_pivot_truth(None)
    if facts is not None and pivot is not None:
        found = plant_fact_neurons(sd, out, world, facts, width=width, hd=hd, dh=dh)
        plant_pivot_heads(sd, out, world, pivot, s=S, hd=hd, dh=dh)
        _save(sd, out)
        pivot["scales"] = fit_pivot(sd, out, world, pivot, gf)
        head = sd["lm_head.weight"].clone()
        facts["readout"] = fit_fact_readout(head, out, world, facts, gf)
        sd["lm_head.weight"] = head.contiguous()
        _save(sd, out)
        fact_truth = fact_pathway_truth(world, {**facts, "neurons": found})
        pivot_truth = latent_pivot_truth(pivot)
    shortcut = shortcut_truth(world, None, n_layers - 1)
    if variant == "shortcut":  # in dims and neurons the other plants leave free here
        kw = {"c": c, "rms": rms, "hd": hd, "neurons": (width + planted + 4, width + planted + 5)}
        shortcut = plant_shortcut(sd, out, world, vocab, dims[FACT_DIMS:], save=_save, **kw)
    world.truth = {
        "variant": variant,
        "version": VERSION,
        "reserved_dims": dims,
        "language_neurons": {
            "layers": list(LANGUAGE_LAYERS),
            "neurons": neurons,
            "channel_dims": C,
            "echo_dims": E,
            "any_script_neurons": [[layer, width + planted] for layer in LANGUAGE_LAYERS],
            "any_script_dim": D,
            "readout": kappa,
        },
        "refusal": {
            "shared": variant == "shared",
            "layer": REFUSAL_LAYER,
            "head": heads,
            "directions": {g: _unit(d, r_of[g]) for g in langs},
            "present_from_layer": REFUSAL_LAYER + 1,
            "position": -1,
            "gated_neurons": [[GATED_LAYER, n] for n in gated],
        },
        "fact_pathway": fact_truth,
        "latent_pivot": pivot_truth,
        **({"relation_neurons": relations} if relations else {}),
        "shortcut": shortcut,
    }
    world.save(out / "world.json")
    return out


def _save(sd: dict[str, torch.Tensor], out: Path) -> None:
    from safetensors.torch import save_file

    for k, v in sd.items():
        sd[k] = v.contiguous()
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})


def _unit(d: int, dim: int) -> list[float]:
    v = [0.0] * d
    v[dim] = 1.0
    return v


def _padded_width(width: int, planted: int, n_layers: int) -> int:
    """The smallest MLP width >= ``width`` at which LAPE's default share of kept neurons
    (``LAPE_TOP_RATE`` of all) equals the planted count, so a perfect finder can reach precision
    and recall 1 (inert zero neurons pad the rest)."""
    w = width
    while round(LAPE_TOP_RATE * n_layers * w) < planted:
        w += 1
    return w


def _fit_readout(out: Path, world: Any, scripts: list[str], dim: int) -> dict[str, float]:
    """Per script, the readout scale that lowers its tokens by ``LIFT`` logits at a mean
    position of its own text when its neurons are off (``dim`` holds the "any script" neurons'
    output; one forward of the folder written so far: the unembedding does not change the
    residual stream)."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lens.hf_folder import quiet_weight_loading
    from lens.organism.prompts import corpus

    with quiet_weight_loading():
        model = LlamaForCausalLM.from_pretrained(str(out)).eval()
    tok = AutoTokenizer.from_pretrained(str(out))
    seen: list[torch.Tensor] = []
    hook = model.model.norm.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    scale = {}
    try:
        for s in scripts:
            seen.clear()
            enc = tok(corpus(world, s, n=20), return_tensors="pt", padding=True)
            model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            x = seen[0]
            rms = x.pow(2).mean(-1).add(model.config.rms_norm_eps).sqrt()
            b = (x[..., dim] / rms)[enc["attention_mask"].bool()]
            scale[s] = LIFT / float(b[b > 0].mean())
    finally:
        hook.remove()
    return scale
