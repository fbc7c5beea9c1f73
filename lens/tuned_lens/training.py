"""``lens.tuned_lens.train``: fit one affine translator per layer to the model's own output.

The recipe of the tuned-lens paper (Belrose et al. 2023): translators start at the identity
with zero bias; the loss is KL(final distribution || translated readout) averaged over every
real token of a step, summed over layers (each translator sees only its own layer's term);
SGD with Nesterov momentum 0.9, learning rate ``lr`` (1.0) decayed linearly to 0 over
``steps``, gradient-norm clipping at 1.0 over all translators together. As in the paper, the
last layer's ``resid_post`` translator is not trained: that residual decodes to the model's
own output, so the identity is exact (training it at lr 1.0 only amplifies rounding noise:
on SmolLM2, whose residuals reach norms of 2e4, it drifted to 1.3 bits of KL in 24 steps).
The paper trains 250 steps of 2^18 tokens; on a CPU use what fits (recorded per run).

Streamed: one step of token rows and its residuals exist at a time. Resumable: with
``checkpoint=path`` the translators, momentum buffers and progress are written atomically,
with a sha256 of the tensors (``lens.stats.save_tensors``; a corrupt file raises on resume),
every ``checkpoint_every`` steps; a rerun with the same arguments continues and ends
bit-identical to an uninterrupted run (checked against a hash of the rows already used).

torch.distributed (gloo or nccl): every process reads the same steps; rank r forwards rows
r, r + world, ... of each step; gradients are all-reduced before clipping, so every rank
holds the same translators. Rank 0 writes the checkpoint; every rank reads it on resume
(use a path all processes see).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from interventions.affine import Affine
from lens.stats.checkpoint import digest, load_tensors, read_tensor_meta, save_tensors
from lens.stats.distributed import all_reduce_sum, barrier, rank, world_size
from lens.tuned_lens import data
from lens.tuned_lens.readout import capture, chunk_rows, kl_per_token, readout_logprobs
from lens.tuned_lens.translators import TunedLens, model_binding

LN2 = math.log(2.0)
CHECKPOINT_FORMAT = "lens.tuned_lens.train/1"  # atomic, sha256-checked (lens.stats)


def train(
    model: Any,
    corpus: Iterable[Any],
    *,
    layers: str | Sequence[int] = "all",
    site: str = "resid_post",
    steps: int = 100,
    tokens_per_step: int = 2048,
    max_length: int | None = None,
    lr: float = 1.0,
    momentum: float = 0.9,
    clip: float = 1.0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 10,
    seed: int = 0,
    progress: bool = False,
    process_group: Any = None,
) -> TunedLens:
    """Train a :class:`TunedLens` for ``model`` on ``corpus``.

    Args:
        model: a TransformerBridge (left unchanged; only the translators learn).
        corpus: texts or token-id lists (a list is re-read, reshuffled with ``seed``, as
            often as ``steps`` needs; any other iterable is read once).
        layers: ``"all"`` or layer indices.
        site: residual site read at each layer (``"resid_post"``, ``"resid_pre"``, ...).
        steps: optimizer steps.
        tokens_per_step: real tokens per step, over all processes (at least; whole rows).
        max_length: longest row (default: the model's context, at most 512).
        lr, momentum, clip: SGD-Nesterov learning rate (decayed linearly to 0), momentum,
            and the gradient-norm clip.
        checkpoint: a file to write progress to and resume from.
        checkpoint_every: write it every N steps (and at the end).
        seed: shuffles the corpus order of each pass.
        progress: a tqdm bar (rank 0).
        process_group: torch.distributed group (default: the world when initialised).

    Returns:
        The trained translators; ``record`` says how (steps, tokens, seed, seconds, loss).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> docs = [[1, 5, 9, 2, 7, 3], [3, 4, 8, 8, 1]] * 4
        >>> tl = lens.tuned_lens.train(model, docs, steps=2, tokens_per_step=16, progress=False)
        >>> tl.record["steps"], tl.record["tokens"] >= 32
        (2, True)
    """
    _check_args(steps, tokens_per_step, lr, momentum, clip, checkpoint_every)
    lens_ = TunedLens.identity(model, layers, site)
    n_ctx = int(getattr(model.cfg, "n_ctx", 512) or 512)
    max_length = min(n_ctx, 512) if max_length is None else int(max_length)
    if not 1 <= max_length <= n_ctx:
        raise ValueError(f"max_length must be in 1..{n_ctx} (the model's context)")
    me, world = rank(process_group), world_size(process_group)
    device = next(model.parameters()).device
    params = [torch.nn.Parameter(t.to(device)) for m in lens_.maps for t in (m.weight, m.bias)]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True)
    args = {
        "layers": lens_.layers,
        "site": site,
        "steps": steps,
        "tokens_per_step": tokens_per_step,
        "max_length": max_length,
        "lr": lr,
        "momentum": momentum,
        "clip": clip,
        "seed": seed,
    }
    binding = model_binding(model)
    last = int(model.cfg.n_layers) - 1
    frozen = {i for i, x in enumerate(lens_.layers) if site == "resid_post" and x == last}
    run_id = digest([args, binding["fingerprint"]])
    done, tokens_done, seconds, corpus_hash = 0, 0, 0.0, None
    if checkpoint is not None:
        barrier(process_group)
        if read_tensor_meta(checkpoint, CHECKPOINT_FORMAT) is not None:
            tensors, meta = load_tensors(checkpoint, CHECKPOINT_FORMAT)
            if meta["run"] != run_id:
                raise ValueError(
                    f"checkpoint {checkpoint} was written by a run with other arguments or "
                    "another model; delete it or pass another checkpoint path"
                )
            _restore(params, opt, tensors)
            done, tokens_done = int(meta["steps_done"]), int(meta["tokens_done"])
            seconds, corpus_hash = float(meta["seconds"]), meta["corpus_sha256"]

    stream = data.steps(model, corpus, tokens_per_step, max_length, seed)
    hasher = data.new_digest()
    for _ in range(done):
        data.rows_digest(hasher, next(stream))
    if corpus_hash is not None and hasher.hexdigest() != corpus_hash:
        raise ValueError(
            f"the corpus differs from the one checkpoint {checkpoint} was trained on; delete "
            "it or pass another checkpoint path"
        )

    def save(checkpoint: str | os.PathLike) -> None:
        if me == 0:
            record = {
                "run": run_id,
                "steps_done": done,
                "tokens_done": tokens_done,
                "seconds": seconds,
                "corpus_sha256": hasher.hexdigest(),
            }
            save_tensors(checkpoint, _state_tensors(params, opt), record, CHECKPOINT_FORMAT)
        barrier(process_group)

    losses = torch.zeros(len(lens_.layers), dtype=torch.float64)
    bar = tqdm(total=steps, initial=done, desc="tuned lens", disable=not progress or me != 0)
    try:
        while done < steps:
            start = time.perf_counter()
            rows = next(stream)
            data.rows_digest(hasher, rows)
            for group in opt.param_groups:
                group["lr"] = lr * (1.0 - done / steps)
            losses = _step(
                model, lens_.layers, site, params, opt, rows, clip, me, world, device, frozen
            )
            done += 1
            tokens_done += sum(len(r) for r in rows)
            seconds += time.perf_counter() - start
            bar.update(1)
            bar.set_postfix(kl_bits=f"{float(losses.mean()) / LN2:.3f}")
            if checkpoint is not None and (done % checkpoint_every == 0 or done == steps):
                save(checkpoint)
    finally:
        bar.close()
    maps = [
        Affine(params[2 * i].detach().cpu().clone(), params[2 * i + 1].detach().cpu().clone())
        for i in range(len(lens_.layers))
    ]
    record = {
        **args,
        "tokens": tokens_done,
        "seconds": round(seconds, 3),
        "processes": world,
        "identity_layers": [lens_.layers[i] for i in sorted(frozen)],
        "last_step_kl_bits": [round(float(x) / LN2, 6) for x in losses],
    }
    return TunedLens(maps, lens_.layers, site, binding, record)


def _step(
    model: Any,
    layers: list[int],
    site: str,
    params: list[torch.nn.Parameter],
    opt: torch.optim.Optimizer,
    rows: data.Rows,
    clip: float,
    me: int,
    world: int,
    device: Any,
    frozen: set[int] = frozenset(),  # type: ignore[assignment]
) -> torch.Tensor:
    """One optimizer step on ``rows``; returns each layer's mean KL (nats) over the step.
    Translators listed in ``frozen`` (indices into ``layers``) get no gradient."""
    n_total = sum(len(r) for r in rows)
    mine = rows[me::world]
    grads = [torch.zeros_like(p) for p in params]
    losses = torch.zeros(len(layers), dtype=torch.float64)
    if mine:
        tokens, mask = data.pad_rows(mine, device)
        resid, target = capture(model, tokens, mask, layers, site)
        chunk = chunk_rows(model)
        for i in range(len(layers)):
            if i in frozen:
                continue
            w, b = params[2 * i], params[2 * i + 1]
            for s in range(0, resid.shape[1], chunk):
                with torch.enable_grad():
                    logq = readout_logprobs(model, resid[i, s : s + chunk] @ w.T + b)
                    loss = kl_per_token(target[s : s + chunk], logq).sum() / n_total
                    gw, gb = torch.autograd.grad(loss, [w, b])
                grads[2 * i] += gw
                grads[2 * i + 1] += gb
                losses[i] += float(loss.detach())
    flat = all_reduce_sum(torch.cat([g.flatten() for g in grads] + [losses.float()]))
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset : offset + g.numel()].view_as(g).clone()
        offset += g.numel()
    torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return flat[offset:].double()


def _state_tensors(params: list[torch.nn.Parameter], opt: torch.optim.Optimizer):
    out = {}
    for i, p in enumerate(params):
        out[f"param.{i}"] = p.detach().cpu()
        buf = opt.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            out[f"momentum.{i}"] = buf.detach().cpu()
    return out


def _restore(params: list[torch.nn.Parameter], opt: torch.optim.Optimizer, tensors: dict):
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(tensors[f"param.{i}"])
            if f"momentum.{i}" in tensors:
                opt.state[p]["momentum_buffer"] = tensors[f"momentum.{i}"].to(p.device).clone()


def _check_args(steps, tokens_per_step, lr, momentum, clip, checkpoint_every) -> None:
    for name, value in (
        ("steps", steps),
        ("tokens_per_step", tokens_per_step),
        ("checkpoint_every", checkpoint_every),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    for name, value in (("lr", lr), ("clip", clip)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
