"""Train the organism: a small transformers LlamaForCausalLM on the world's documents.

Saves an HF folder: config.json, model.safetensors (float32), tokenizer files, world.json,
train_log.jsonl, behaviour.json, and ``checkpoints/step_NNNNN/`` HF folders (float16).

Run ``lens organism train --out DIR [--steps N] [--seed S]``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from lens.organism.documents import (
    CHAT_PIVOT_SHARE,
    KIND_WEIGHTS,
    PIVOT_FACT_SHARE,
    DataMix,
    DocumentSampler,
)
from lens.organism.evaluate import hf_logits_fn, measure, summary_line
from lens.organism.tokenizer import build_tokenizer
from lens.organism.world import World
from lens.organism.world_build import build_world


@dataclass
class TrainConfig:
    """Hyper-parameters of an organism training run (defaults = the shipped model).

    The data-mix fields are those of ``lens.organism.documents.DataMix`` (see there); their
    defaults reproduce the shipped model's training documents exactly.
    """

    steps: int = 2000
    seed: int = 0
    world_seed: int = 0
    batch_size: int = 48
    max_len: int = 48
    lr: float = 3e-3
    min_lr_ratio: float = 0.05
    warmup: int = 60
    weight_decay: float = 0.05
    n_layers: int = 6
    d_model: int = 96
    d_mlp: int = 256
    n_heads: int = 4
    n_kv_heads: int = 4
    checkpoint_fractions: tuple[float, ...] = (0.05, 0.15, 0.3, 0.5, 0.75)
    log_every: int = 25
    eval_at_checkpoints: bool = True
    threads: int = 1
    kind_weights: dict[str, float] = field(default_factory=lambda: dict(KIND_WEIGHTS))
    pivot_fact_share: float = PIVOT_FACT_SHARE
    parallel_pivot_share: float | None = None
    chat_pivot_share: float = CHAT_PIVOT_SHARE
    refusal_examples_per_language: int | None = None

    def check(self) -> None:
        """Refuse sizes a model cannot be built with (before any work starts).

        Raises:
            ValueError: a size or step count below 1, or ``d_model`` not a multiple of
                ``n_heads`` (or ``n_heads`` of ``n_kv_heads``); an invalid data mix.
        """
        names = ("steps", "batch_size", "n_layers", "d_model", "d_mlp", "n_heads", "n_kv_heads")
        small = [f"{n}={getattr(self, n)}" for n in names if getattr(self, n) < 1]
        if small:
            raise ValueError(f"{', '.join(small)}: these must be >= 1")
        if self.d_model % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"d_model={self.d_model} must be a multiple of n_heads={self.n_heads}, and "
                f"n_heads of n_kv_heads={self.n_kv_heads}"
            )
        self.data_mix()

    def data_mix(self) -> DataMix:
        return DataMix(
            kind_weights=tuple(self.kind_weights.items()),
            pivot_fact_share=self.pivot_fact_share,
            parallel_pivot_share=self.parallel_pivot_share,
            chat_pivot_share=self.chat_pivot_share,
            refusal_examples_per_language=self.refusal_examples_per_language,
        )


def llama_config(cfg: TrainConfig, tokenizer: Any) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        architectures=["LlamaForCausalLM"],
    )


def make_batch(
    sampler: DocumentSampler, vocab: dict[str, int], tokenizer: Any, n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` documents as right-padded (tokens, attention_mask, labels) with BOS/EOS."""
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    rows = [[bos, *(vocab[w] for w in sampler.sample()), eos] for _ in range(n)]
    width = max(map(len, rows))
    tokens = torch.full((n, width), pad, dtype=torch.long)
    mask = torch.zeros_like(tokens)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    labels = tokens.masked_fill(mask == 0, -100)
    return tokens, mask, labels


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cos)


def checkpoint_steps(cfg: TrainConfig) -> list[int]:
    return sorted({max(1, round(f * cfg.steps)) for f in cfg.checkpoint_fractions})


def save_folder(model: Any, tokenizer: Any, world: World, folder: Path, dtype: torch.dtype) -> None:
    """An HF folder (config, safetensors in ``dtype``, tokenizer, world.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    model.config.dtype = str(dtype).removeprefix("torch.")
    model.save_pretrained(str(folder), state_dict=state, safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    world.save(folder / "world.json")


def train(cfg: TrainConfig, out: str | Path, *, progress: bool = False) -> dict[str, Any]:
    """Train from scratch and save everything under ``out``; returns the final behaviour dict.

    Example (a few steps of a tiny config; seconds):
        >>> import tempfile
        >>> cfg = TrainConfig(steps=2, batch_size=4, n_layers=1, d_model=32, d_mlp=64,
        ...                   eval_at_checkpoints=False, checkpoint_fractions=(0.5,))
        >>> res = train(cfg, tempfile.mkdtemp(), progress=False)
        >>> sorted(res)
        ['recall', 'refusal']
    """
    cfg.check()
    from transformers import LlamaForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    world = build_world(cfg.world_seed)
    tokenizer = build_tokenizer(world)
    vocab = tokenizer.get_vocab()
    sampler = DocumentSampler(world, seed=cfg.seed, max_len=cfg.max_len, mix=cfg.data_mix())
    model = LlamaForCausalLM(llama_config(cfg, tokenizer))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    ckpts = set(checkpoint_steps(cfg))
    ckpt_root = out / "checkpoints"
    if ckpt_root.exists():
        shutil.rmtree(ckpt_root)
    world.save(out / "world.json")
    log_path = out / "train_log.jsonl"
    log = log_path.open("w")
    log.write(json.dumps({"event": "config", **asdict(cfg)}) + "\n")
    log.flush()
    start = time.time()
    running = 0.0
    try:
        for step in tqdm(range(1, cfg.steps + 1), desc="train organism", disable=not progress):
            model.train()
            for g in opt.param_groups:
                g["lr"] = lr_at(step - 1, cfg)
            tokens, mask, labels = make_batch(sampler, vocab, tokenizer, cfg.batch_size)
            loss = model(input_ids=tokens, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            running += loss.item()
            if step % cfg.log_every == 0 or step == cfg.steps:
                n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
                entry = {"step": step, "loss": running / n, "lr": lr_at(step - 1, cfg)}
                entry["elapsed_s"] = round(time.time() - start, 1)
                log.write(json.dumps(entry) + "\n")
                log.flush()
                running = 0.0
            if step in ckpts:
                model.eval()
                folder = ckpt_root / f"step_{step:05d}"
                save_folder(model, tokenizer, world, folder, torch.float16)
                if cfg.eval_at_checkpoints:
                    with torch.no_grad():
                        res = measure(world, hf_logits_fn(model), tokenizer)
                    (folder / "behaviour.json").write_text(json.dumps(res, indent=1))
                    line = {"event": "eval", "step": step, "summary": summary_line(res)}
                    log.write(json.dumps(line) + "\n")
                    log.flush()
        model.eval()
        wall = time.time() - start
        with torch.no_grad():
            res = measure(world, hf_logits_fn(model), tokenizer)
        save_folder(model, tokenizer, world, out, torch.float32)
        (out / "behaviour.json").write_text(json.dumps(res, indent=1))
        final = {"event": "final", "step": cfg.steps, "wall_s": round(wall, 1)}
        final["summary"] = summary_line(res)
        log.write(json.dumps(final) + "\n")
    finally:
        log.close()
        torch.set_num_threads(prev_threads)
    return res
