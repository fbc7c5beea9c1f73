"""``lens.dictionaries.train``: a TopK SAE or transcoder trained on a model's activations,
streamed (:mod:`lens.dictionaries.stream`), resumable bit-exactly from a checksummed
checkpoint, and all-reduced under torch.distributed (:mod:`lens.dictionaries.training`)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from typing import Any

import torch
from tqdm.auto import tqdm

from interventions.dictionary import SAE
from lens.dictionaries.build import binding, random_sae
from lens.dictionaries.stream import ActivationBuffer
from lens.dictionaries.training import Trainer
from lens.stats.checkpoint import digest, load_tensors, read_tensor_meta, save_tensors
from lens.stats.corpus import new_hash
from lens.stats.distributed import barrier, rank

CHECKPOINT_FORMAT = "lens.dictionaries.train/1"


def _doc_hash(h: Any, doc: Any) -> None:
    h.update((doc if isinstance(doc, str) else repr(list(doc))).encode() + b"\0")


class _Hashed:
    """Iterates the corpus, hashing each document it hands out."""

    def __init__(self, corpus: Iterable[Any]) -> None:
        self.items = iter(corpus)
        self.hasher = new_hash()

    def __iter__(self) -> _Hashed:
        return self

    def __next__(self) -> Any:
        doc = next(self.items)
        _doc_hash(self.hasher, doc)
        return doc


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def train(
    model: Any,
    corpus: Iterable[Any],
    *,
    site: str = "resid_post",
    layer: int,
    n_latents: int,
    k: int,
    out_site: str | None = None,
    steps: int | None = None,
    batch_size: int = 1024,
    buffer_tokens: int = 16384,
    max_length: int = 128,
    rows_per_forward: int = 16,
    lr: float | None = None,
    aux_coeff: float = 1 / 32,
    dead_after_tokens: int = 100_000,
    seed: int = 0,
    exclude_first: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 50,
    log_every: int = 10,
    progress: bool = False,
    process_group: Any = None,
) -> SAE:
    """Train a TopK dictionary on ``site`` of block ``layer`` (a transcoder predicting
    ``out_site`` when given) from ``corpus`` (texts or token-id lists, read once).

    Args:
        steps: optimizer steps (None: until the corpus is used up).
        batch_size: tokens per step; buffer_tokens: the shuffle buffer's size in tokens.
        max_length, rows_per_forward: token rows per forward and their length.
        lr: Adam learning rate (default ``2e-4 / sqrt(n_latents / 2**14)``).
        aux_coeff, dead_after_tokens: the AuxK loss weight and the dead-latent window.
        checkpoint: a file to write every ``checkpoint_every`` steps and at the end, and to
            resume from (the same arguments and corpus continue bit-identically; a run that
            stopped because its corpus ran out reads on from a longer corpus that starts with
            the same documents).
        exclude_first: train without the first position of every row (BOS or not); the
            default drops only a BOS token.
        log_every: steps between entries of ``meta["training"]["log"]``.
        progress: a tqdm bar with live L0, explained variance and dead fraction.

    Returns:
        The dictionary (reading raw activations); ``meta["training"]`` records the
        arguments, tokens, seconds (reading vs updating) and the log.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> docs = [[(7 * i + j) % 200 + 3 for j in range(40)] for i in range(30)]
        >>> sae = lens.dictionaries.train(model, docs, layer=1, n_latents=64, k=4,
        ...                               batch_size=128, buffer_tokens=512, steps=3)
        >>> sae.meta["training"]["steps"], sae.d_sae
        (3, 64)
    """
    for name, value in (
        ("batch_size", batch_size),
        ("buffer_tokens", buffer_tokens),
        ("rows_per_forward", rows_per_forward),
        ("max_length", max_length),
        ("checkpoint_every", checkpoint_every),
        ("log_every", log_every),
    ):
        _positive(name, value)
    if steps is not None:
        _positive("steps", steps)
    if buffer_tokens < batch_size:
        raise ValueError(f"buffer_tokens ({buffer_tokens}) must be >= batch_size ({batch_size})")
    init = random_sae(
        model, site=site, layer=layer, n_latents=n_latents, k=k, out_site=out_site, seed=seed
    )
    args = {
        "site": site,
        "layer": init.layer,
        "out_site": out_site,
        "n_latents": n_latents,
        "k": k,
        "steps": steps,
        "batch_size": batch_size,
        "buffer_tokens": buffer_tokens,
        "max_length": max_length,
        "rows_per_forward": rows_per_forward,
        "lr": lr,
        "aux_coeff": aux_coeff,
        "dead_after_tokens": dead_after_tokens,
        "seed": seed,
    }
    if exclude_first:  # recorded only when set, so earlier checkpoints keep their run id
        args["exclude_first"] = True
    bound = binding(model)
    run_id = digest([args, bound["fingerprint"]])
    trainer = Trainer(
        init,
        lr=lr,
        aux_coeff=aux_coeff,
        dead_after_tokens=dead_after_tokens,
        process_group=process_group,
    )
    docs = _Hashed(corpus)
    buffer = ActivationBuffer(
        model,
        init,
        docs,
        buffer_tokens=buffer_tokens,
        max_length=max_length,
        rows_per_forward=rows_per_forward,
        seed=seed,
        exclude_first=exclude_first,
    )
    done, seconds, log = 0, [0.0, 0.0], []  # seconds: reading, updating
    scales = torch.ones(2)
    resumed = False
    if checkpoint is not None:
        barrier(process_group)
        if read_tensor_meta(checkpoint, CHECKPOINT_FORMAT) is not None:
            tensors, meta = load_tensors(checkpoint, CHECKPOINT_FORMAT)
            if meta["run"] != run_id:
                raise ValueError(
                    f"checkpoint {checkpoint} was written by a run with other arguments or "
                    "another model; delete it or pass another checkpoint path"
                )
            trainer.restore(tensors)
            buffer.restore(tensors, docs)
            if docs.hasher.hexdigest() != meta["corpus_sha256"]:
                raise ValueError(
                    f"the corpus differs from the one checkpoint {checkpoint} was trained on; "
                    "delete it or pass another checkpoint path"
                )
            scales = tensors["scales"].clone()
            done, seconds, log = int(meta["steps_done"]), meta["seconds"], meta["log"]
            resumed = True
    d = init.d_in
    if not resumed:  # input scale and b_dec from the first buffer
        first = buffer.peek()
        if first.shape[0] == 0:
            raise ValueError("the corpus gave no tokens to train on")
        x0, y0 = first[:, :d], first[:, d:] if first.shape[1] > d else first[:, :d]
        scales = torch.tensor(
            [
                math.sqrt(d) / float(x0.norm(dim=-1).mean().clamp_min(1e-12)),
                math.sqrt(d) / float(y0.norm(dim=-1).mean().clamp_min(1e-12)),
            ]
        )
        with torch.no_grad():
            trainer.params["b_dec"].copy_(y0.mean(0) * scales[1])

    def save() -> None:
        if rank(process_group) == 0 and checkpoint is not None:
            tensors = {**trainer.state(), **buffer.state(), "scales": scales}
            record = {
                "run": run_id,
                "steps_done": done,
                "seconds": seconds,
                "log": log,
                "corpus_sha256": docs.hasher.hexdigest(),
            }
            save_tensors(checkpoint, tensors, record, CHECKPOINT_FORMAT)
        barrier(process_group)

    bar = tqdm(
        total=steps,
        initial=done,
        desc="sae",
        unit="step",
        disable=not progress or rank(process_group) != 0,
    )
    stats: dict[str, float] = {}
    try:
        while steps is None or done < steps:
            read_before = buffer.seconds_reading
            start = time.perf_counter()
            rows = buffer.next_batch(batch_size)
            if rows is None:
                break
            x, y = rows[:, :d] * scales[0], (rows[:, d:] if rows.shape[1] > d else None)
            stats = trainer.step(x, None if y is None else y * scales[1])
            done += 1
            read = buffer.seconds_reading - read_before
            seconds = [seconds[0] + read, seconds[1] + time.perf_counter() - start - read]
            if done % log_every == 0 or done == 1:
                log.append(
                    {
                        "step": done,
                        "tokens": buffer.tokens_read,
                        **{k: round(v, 6) for k, v in stats.items()},
                    }
                )
            bar.update(1)
            bar.set_postfix(
                l0=f"{stats['l0']:.1f}", ev=f"{1 - stats['fvu']:.3f}", dead=f"{stats['dead']:.3f}"
            )
            if checkpoint is not None and done % checkpoint_every == 0:
                save()
    finally:
        bar.close()
    if done == 0:
        raise ValueError("no training step ran: the corpus gave no tokens")
    if checkpoint is not None and done % checkpoint_every != 0:
        save()
    record = {
        **args,
        "steps": done,
        "tokens": done * batch_size,
        "tokens_read": buffer.tokens_read,
        "seconds_reading": round(seconds[0], 3),
        "seconds_updating": round(seconds[1], 3),
        "lr_used": trainer.lr,
        "input_scale": float(scales[0]),
        "output_scale": float(scales[1]),
        "last": {k: round(v, 6) for k, v in stats.items()},
        "log": log,
    }
    return trainer.result(
        float(scales[0]), float(scales[1]), {"binding": bound, "training": record}
    )
