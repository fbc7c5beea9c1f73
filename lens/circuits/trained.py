"""A trained key -> value lookup model whose circuit was found by patching and written down.

Task: ``k1 v1 k2 v2 k3 v3 k4 v4 q``: four distinct keys (tokens 0-7), four distinct values
(tokens 8-15), and the query ``q``, one of the four keys; the answer is the value that followed
``q``. The designed dependency: the answer sits at the position *after* the queried key, so a
lookup needs the key's identity moved onto its value's position first (a previous-token head,
then K-composition), as in induction.

Pairs (:func:`lookup_pairs`): the corrupt prompt swaps the keys of the queried pair and of one
other pair, so the query now finds the other pair's value (the wrong answer); every value, the
query and all positions are unchanged.

The model (:func:`lookup_model`, shipped under ``shipped/lookup``): a 2-layer GPT-2-family bridge
(``d_model`` 32, 4 heads of 8, MLPs of 32, 16 tokens, 9 positions), trained by
:func:`train_lookup` (seed 0, 600 steps of 256 random sequences, AdamW; about 20 s of one CPU
thread). The attention output biases ``b_O`` are held at zero during training.

The circuit (:data:`LOOKUP_EDGES`) was found by :func:`lens.circuits.truth.find_circuit` (greedy
removal of edges while faithfulness stays within ``tau`` = :data:`LOOKUP_TAU`) on
``lookup_pairs(64)`` and written down here; the tests re-derive it. What it shows:

* ``a0.h1`` is the previous-token head: it reads the key's token (``input -> a0.h1<v>``) and
  writes it onto the value position;
* ``a1.h0``, ``a1.h2``, ``a1.h3`` are redundant lookup heads: their keys read ``a0.h1`` (and
  ``m0``, which re-encodes ``a0.h1``'s output), their values read ``a0.h1`` / ``m0`` too;
* their outputs reach the logits directly and through ``m1``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from interventions import bridge

N_KEYS, N_VALUES, N_PAIRS = 8, 8, 4
VOCAB, SEQ = N_KEYS + N_VALUES, 2 * N_PAIRS + 1
SHAPE = dict(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=32, d_vocab=VOCAB, n_ctx=SEQ)
SHIPPED = Path(__file__).parent / "shipped" / "lookup"
LOOKUP_TAU = 0.01
LOOKUP_EDGES = [
    ("input", "a0.h1<v>"),
    ("a0.h1", "m0"),
    ("a0.h1", "a1.h0<k>"),
    ("a0.h1", "a1.h2<k>"),
    ("a0.h1", "a1.h3<k>"),
    ("a0.h1", "a1.h2<v>"),
    ("a0.h1", "a1.h3<v>"),
    ("m0", "a1.h0<k>"),
    ("m0", "a1.h2<k>"),
    ("m0", "a1.h3<k>"),
    ("a1.h0", "m1"),
    ("a1.h0", "logits"),
    ("a1.h2", "m1"),
    ("a1.h2", "logits"),
    ("a1.h3", "m1"),
    ("a1.h3", "logits"),
    ("m1", "logits"),
]


def lookup_batch(
    n: int, *, generator: torch.Generator
) -> tuple[Int[Tensor, "n seq"], Int[Tensor, " n"]]:
    """``n`` random lookup sequences ``[n, 9]`` and their answers ``[n]``.

    Example:
        >>> tokens, answers = lookup_batch(2, generator=torch.Generator().manual_seed(0))
        >>> tuple(tokens.shape), bool((tokens[:, :-1:2] < N_KEYS).all())
        ((2, 9), True)
    """
    keys = torch.rand(n, N_KEYS, generator=generator).argsort(1)[:, :N_PAIRS]
    values = torch.rand(n, N_VALUES, generator=generator).argsort(1)[:, :N_PAIRS] + N_KEYS
    which = torch.randint(0, N_PAIRS, (n,), generator=generator)
    rows = torch.arange(n)
    context = torch.stack([keys, values], 2).reshape(n, 2 * N_PAIRS)
    return torch.cat([context, keys[rows, which, None]], 1), values[rows, which]


def lookup_pairs(
    n: int, *, seed: int = 1
) -> tuple[list[list[int]], list[list[int]], list[int], list[int]]:
    """``n`` clean/corrupt pairs (equal length, 9 tokens): the corrupt prompt swaps the
    queried key with another pair's key. Returns ``clean, corrupt, answer, wrong``.

    Example:
        >>> clean, corrupt, answer, wrong = lookup_pairs(1, seed=0)
        >>> clean[0][-1] == corrupt[0][-1], answer[0] == clean[0][clean[0].index(clean[0][-1]) + 1]
        (True, True)
    """
    gen = torch.Generator().manual_seed(seed)
    tokens, answers = lookup_batch(n, generator=gen)
    others = torch.randint(1, N_PAIRS, (n,), generator=gen)
    clean, corrupt, answer, wrong = [], [], [], []
    for row, ans, shift in zip(tokens.tolist(), answers.tolist(), others.tolist()):
        j = row[:-1:2].index(row[-1])
        i = (j + shift) % N_PAIRS
        swapped = list(row)
        swapped[2 * i], swapped[2 * j] = row[2 * j], row[2 * i]
        clean.append(row)
        corrupt.append(swapped)
        answer.append(ans)
        wrong.append(row[2 * i + 1])
    return clean, corrupt, answer, wrong


def lookup_accuracy(model: Any, *, n: int = 1000, seed: int = 123) -> float:
    """Fraction of ``n`` fresh random sequences whose last-position argmax is the answer."""
    tokens, answers = lookup_batch(n, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        pred = model(tokens)[:, -1].argmax(-1)
    return float((pred == answers).float().mean())


def _output_biases(model: Any) -> list[Tensor]:
    out = []
    for layer in range(int(model.cfg.n_layers)):
        bias = bridge.original(model.blocks[layer].attn.o).bias
        if bias is not None:
            out.append(bias)
    return out


def train_lookup(
    *,
    seed: int = 0,
    steps: int = 600,
    batch_size: int = 256,
    lr: float = 3e-3,
    weight_decay: float = 0.01,
) -> tuple[Any, dict[str, Any]]:
    """Train the lookup model from scratch (cross-entropy at the query position only).

    Returns the model (eval mode) and a record: settings, final loss, accuracy, seconds.
    Deterministic for a seed on one machine with one torch thread.
    """
    import lens

    model = lens.load_model(lens.tiny_config("gpt2", seed=seed, **SHAPE))
    fixed = {id(b) for b in _output_biases(model)}
    with torch.no_grad():
        for b in _output_biases(model):
            b.zero_()
    params = [p for p in model.parameters() if id(p) not in fixed]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    start, loss = time.perf_counter(), torch.tensor(float("nan"))
    for _ in range(steps):
        tokens, answers = lookup_batch(batch_size, generator=gen)
        loss = torch.nn.functional.cross_entropy(model(tokens)[:, -1], answers)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    model.eval()
    record = {
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "final_loss": float(loss.detach()),
        "accuracy": lookup_accuracy(model),
        "seconds": round(seconds, 1),
    }
    return model, record


def save_lookup(model: Any, folder: str | Path, *, record: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (model shape and training record)."""
    from safetensors.torch import save_file

    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "model.safetensors"))
    meta = {"format": "lens-trained-circuit", "task": "lookup", "shape": SHAPE, "training": record}
    (path / "config.json").write_text(json.dumps(meta, indent=1) + "\n")
    return path


def lookup_model(folder: str | Path = SHIPPED) -> Any:
    """The trained lookup model (the shipped weights unless ``folder`` is given).

    Example:
        >>> model = lookup_model()
        >>> lookup_accuracy(model, n=200) > 0.99
        True
    """
    from safetensors.torch import load_file

    import lens

    path = Path(folder)
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"no model.safetensors in {path}; write one with "
            "`python -m lens.circuits.trained FOLDER`"
        )
    meta = json.loads((path / "config.json").read_text())
    if meta.get("format") != "lens-trained-circuit":
        raise ValueError(f"{path / 'config.json'} is not a lens trained-circuit config")
    model = lens.load_model(lens.tiny_config("gpt2", seed=0, **meta["shape"]))
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return model.eval()


if __name__ == "__main__":  # python -m lens.circuits.trained [FOLDER]: retrain and save
    import sys

    torch.set_num_threads(1)
    trained, info = train_lookup()
    print(save_lookup(trained, sys.argv[1] if len(sys.argv) > 1 else SHIPPED, record=info), info)
