"""Generation with a KV cache, patchscopes and prefix-reusing patching, measured side by side.

Per model (the organism and SmolLM2-135M-Instruct; ``--quick``: a random 2-layer Hugging Face
llama, built here), one batch of 8 left-padded prompts (token ids, 6-13 tokens), 128 new
tokens (fewer where the context ends first: the organism's is 64), greedy, EOS ignored (2
prompts and 16 tokens with ``--quick``):

    transformers generate         the same weights as a plain transformers model: the baseline
    lens cached                   lens.generate.generate_tokens (KV cache through the bridge)
    lens cached + steering        the same under an ActivationAddition at a middle layer
    lens uncached loop            use_cache=False (every step re-runs the prefix)

then derived rows (ratios of two cases of the same run): cached over uncached, steered over
unsteered. Patchscope: every (source, target) layer pair of the identity preset, batched, vs
one patched target forward per pair (source states read once for both). Patching (SmolLM2
only, and the quick model): resid_pre at every layer x 16 positions of one pair, lens with and
without prefix reuse vs TransformerLens's get_act_patch_resid_pre.

    python -m benchmarks.generate [--quick] [--threads N] [--models organism,smollm2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

import lens
from benchmarks.harness import interleaved, machine_info, markdown_table

BATCH, NEW, QUICK_BATCH, QUICK_NEW = 8, 128, 2, 16


def quick_folder() -> Path:
    """A random 2-layer transformers llama saved to a temporary folder (no tokenizer)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="lens-bench-generate-"))
    LlamaForCausalLM(config).save_pretrained(folder)
    word_tokenizer(512).save_pretrained(folder)
    return folder


def word_tokenizer(size: int) -> Any:
    """A whitespace word-level tokenizer over ``w3`` ... (ids 0-2: pad/unk, BOS, EOS)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, size)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<unk>",
    )  # fmt: skip


def load(name: str) -> tuple[Any, Any]:
    """The bridge and a plain transformers model on the same weights."""
    from transformers import AutoModelForCausalLM

    if name == "organism":
        folder = Path(lens.__file__).parent / "organism" / "shipped"
    elif name == "smollm2":
        from lens import smollm2

        folder = smollm2.smollm2_folder(download=False)
    else:
        folder = Path(name)
    model = lens.load_model(folder if name != "organism" else "organism")
    hf = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    hf.generation_config.eos_token_id = None  # lens runs past EOS here: so must transformers
    return model, hf


def prompts(model: Any, batch: int) -> lens.tokens.Batch:
    gen = torch.Generator().manual_seed(0)
    vocab = int(model.cfg.d_vocab)
    ids = [torch.randint(3, vocab, (6 + i % 8,), generator=gen).tolist() for i in range(batch)]
    return lens.tokens.batch(model, ids)


def generation_rows(
    label: str, model: Any, hf: Any, quick: bool, new_tokens: int | None = None, rounds: int = 1
) -> list[dict[str, Any]]:
    from interventions import ActivationAddition

    batch, new = (QUICK_BATCH, QUICK_NEW) if quick else (BATCH, new_tokens or NEW)
    b = prompts(model, batch)
    new = min(new, int(model.cfg.n_ctx) - b.tokens.shape[1])  # the organism's context is 64
    vec = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    steer = ActivationAddition(vec, layer=model.cfg.n_layers // 2, positions="all")
    kw = dict(max_new_tokens=new, stop_at_eos=False)
    out: dict[str, Any] = {}

    def lens_run(name: str, **extra: Any) -> Any:
        return lambda: out.__setitem__(name, lens.generate.generate_tokens(model, b, **kw, **extra))

    def hf_run() -> None:
        with torch.no_grad():
            out["hf"] = hf.generate(
                b.tokens, attention_mask=b.attention_mask, max_new_tokens=new, do_sample=False,
                pad_token_id=0,
            )  # fmt: skip

    cases = {
        "transformers generate": hf_run,
        "lens cached": lens_run("cached"),
        "lens cached + steering": lens_run("steered", interventions=[steer]),
        "lens uncached loop": lens_run("uncached", use_cache=False),
    }
    rows = interleaved(cases, baseline="transformers generate", rounds=3 if quick else rounds,
                       warmup=1 if quick or rounds > 1 else 0)  # fmt: skip
    same_hf = torch.equal(out["cached"].tokens, out["hf"][:, b.tokens.shape[1] :])
    same_loop = torch.equal(out["cached"].tokens, out["uncached"].tokens)
    seconds = {r["case"]: r["seconds_median"] for r in rows}
    targets = {"lens cached": "<= 1.3x"}
    for row in rows:
        row.update(model=label, target=targets.get(row["case"], ""), new_tokens=new, batch=batch)
        row["tokens_equal"] = {"lens cached": f"hf {same_hf}, loop {same_loop}"}.get(
            row["case"], ""
        )
    cached = seconds["lens cached"]
    speedup = seconds["lens uncached loop"] / cached
    rows.append(derived(label, "cached speedup over uncached loop", speedup, ">= 5x"))
    steering = seconds["lens cached + steering"] / cached
    rows.append(derived(label, "steered cached over unsteered cached", steering, "<= 1.05x"))
    return rows


def derived(label: str, case: str, ratio: float, target: str) -> dict[str, Any]:
    return {"case": case, "model": label, "ratio_median": ratio, "target": target}


def patchscope_rows(label: str, model: Any, quick: bool) -> list[dict[str, Any]]:
    from interventions.sites import hook_name
    from lens.hooks import Probe, apply
    from lens.patchscope import RowPatch, identity, patchscope

    layers = list(range(model.cfg.n_layers))
    source = prompts(model, 1).tokens[0].tolist()
    target = identity()
    t_tokens = lens.tokens.batch(model, [target.prompt]).tokens
    col = t_tokens.shape[1] - 1

    def batched() -> None:
        patchscope(model, source, target=target, target_layers="all", top_k=5)

    def one_per_pair() -> None:
        probes = [
            Probe(hook_name("resid_post", layer), positions=[len(source) - 1]) for layer in layers
        ]
        with torch.no_grad():
            with apply(model, probes=probes):
                model(torch.tensor([source]))
            for s in layers:
                for t in layers:
                    patch = RowPatch("resid_post", [t], probes[s].value[0], col)
                    with apply(model, patch):
                        model(t_tokens)[:, -1].softmax(-1).topk(5)

    rows = interleaved({"patchscope one forward per pair": one_per_pair,
                        "patchscope all pairs batched": batched},
                       baseline="patchscope one forward per pair", rounds=1, warmup=0)  # fmt: skip
    speed = rows[0]["seconds_median"] / rows[1]["seconds_median"]
    for row in rows:
        row.update(model=label, pairs=len(layers) ** 2)
    rows.append(derived(label, "patchscope batched speedup", speed, ">= 5x"))
    return rows


def patching_rows(label: str, model: Any) -> list[dict[str, Any]]:
    import transformer_lens.patching as tlp

    from benchmarks.patching import token_pair
    from lens.patching import activation_patching

    pair = token_pair(model, low=3)  # ids 0..2 are special tokens in HF tokenizers
    clean, corrupt, answer, wrong = pair["clean"], pair["corrupt"], pair["answer"], pair["wrong"]
    cache, tl_metric = pair["cache"], pair["tl_metric"]
    out: dict[str, Any] = {}
    kw = dict(answer=answer, wrong=wrong, sites=["resid_pre"], batch_size=64)
    cases = {
        "plain forward": lambda: model(corrupt),
        "TL get_act_patch_resid_pre": lambda: out.__setitem__("tl", tlp.get_act_patch_resid_pre(
            model, corrupt, cache, tl_metric)),
        "lens patching, prefix reuse": lambda: out.__setitem__("reuse", activation_patching(
            model, clean, corrupt, **kw)),
        "lens patching, no reuse": lambda: out.__setitem__("plain", activation_patching(
            model, clean, corrupt, reuse_prefix=False, **kw)),
    }  # fmt: skip
    with torch.no_grad():
        model(corrupt)  # warm-up
        rows = interleaved(cases, baseline="plain forward", rounds=1, warmup=0)
    seconds = {r["case"]: r["seconds_median"] for r in rows}
    tl = out["tl"].float()
    for row in rows:
        row.update(model=label)
        key = {"lens patching, prefix reuse": "reuse", "lens patching, no reuse": "plain"}
        if row["case"] in key:
            got = out[key[row["case"]]].values("resid_pre").float()
            row["max_abs_diff_vs_tl"] = f"{float((got - tl).abs().max()):.1e}"
    tl_s = seconds["TL get_act_patch_resid_pre"]
    rows.append(derived(label, "TL over lens patching (prefix reuse)",
                        tl_s / seconds["lens patching, prefix reuse"], ">= 8x"))  # fmt: skip
    rows.append(derived(label, "TL over lens patching (no reuse)",
                        tl_s / seconds["lens patching, no reuse"], ""))  # fmt: skip
    return rows


def run(
    quick: bool = False,
    models: list[str] | None = None,
    new_tokens: int | None = None,
    patching: bool = True,
    rounds: int = 1,
    patchscope: bool = True,
) -> list[dict[str, Any]]:
    """Rows of every case, ratios measured side by side in one run."""
    if quick:
        targets = [("quick random llama", str(quick_folder()))]
    else:
        names = models or ["organism", "smollm2"]
        targets = [(name, name) for name in names]
    rows: list[dict[str, Any]] = []
    for label, name in targets:
        if name == "smollm2":
            from lens import smollm2

            if not smollm2.available():
                rows.append({"case": "smollm2", "error": "SmolLM2 not available"})
                continue
        model, hf = load(name)
        rows += generation_rows(label, model, hf, quick, new_tokens, rounds)
        if patchscope:
            rows += patchscope_rows(label, model, quick)
        if patching and (quick or name == "smollm2"):
            rows += patching_rows(label, model)
    for row in rows:
        row.setdefault("suite", "generate")
        row.setdefault("name", row["case"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny random model")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--models", default=None, help="comma list: organism,smollm2")
    parser.add_argument("--new-tokens", type=int, default=None, help=f"default {NEW}")
    parser.add_argument("--no-patching", action="store_true", help="skip the patching rows")
    parser.add_argument("--rounds", type=int, default=1, help="generation rounds (+1 warm-up)")
    parser.add_argument("--no-patchscope", action="store_true", help="skip the patchscope rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = args.models.split(",") if args.models else None
    rows = run(
        args.quick, models, args.new_tokens, not args.no_patching, args.rounds,
        not args.no_patchscope,
    )  # fmt: skip
    print(json.dumps(machine_info()))
    columns = ["model", "case", "batch", "new_tokens", "ratio_median", "seconds_median",
               "tokens_equal", "max_abs_diff_vs_tl", "target"]  # fmt: skip
    print(markdown_table(rows, columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
