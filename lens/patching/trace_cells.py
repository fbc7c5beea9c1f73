"""The forwards of causal tracing, one noised prompt (one noise sample) per forward.

Every traced cell is a copy of the noised run that joins the batch where it first differs
from it: a restored hidden state (block ``l``'s output) at ``blocks.l.hook_resid_post``, a
window of MLP / attention outputs at the input of its first layer. Before that point every
copy equals the noised run, so the forward carries one row (the noised run itself, row 0)
and the shared prefix is computed once. Only the last position is unembedded.

Cells whose effect is zero by construction are never run (:func:`trivial`); their value is
the noised run's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interventions import bridge as hb
from interventions.sites import hook_name
from lens.hooks import apply

KIND_SITES = {"resid": "resid_post", "mlp": "mlp_out", "attn": "attn_out"}
Cell = tuple[str, int, int]  # (kind, centre layer, position in the unpadded prompt)


def window_layers(layer: int, window: int, n_layers: int) -> list[int]:
    """ROME's window of ``window`` layers centred on ``layer``, clipped at the model's edges:
    ``range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2)))``.

    Example:
        >>> window_layers(0, 10, 30), window_layers(29, 10, 30)[0], len(window_layers(15, 10, 30))
        ([0, 1, 2, 3, 4], 24, 10)
    """
    return list(range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2))))


def restored_layers(kind: str, layer: int, window: int, n_layers: int) -> list[int]:
    """The layers a cell restores: ``[layer]`` for ``"resid"``, else its clipped window."""
    return [layer] if kind == "resid" else window_layers(layer, window, n_layers)


def trivial(layers: Sequence[int], pos: int, first_subject: int, seq: int, n_layers: int) -> bool:
    """Whether restoring ``layers`` at ``pos`` cannot change the last token's output.

    Under causal attention a state before the first noised token is the same in the clean and
    the noised run (restoring it writes the value already there); a state written only at the
    last layer reaches no position but its own, so at any position but the last it never
    reaches the unembedded token.

    Example:
        >>> trivial([3], 1, 2, 6, 8), trivial([7], 4, 2, 6, 8), trivial([7], 5, 2, 6, 8)
        (True, True, False)
    """
    return pos < first_subject or (pos != seq - 1 and min(layers) == n_layers - 1)


def join_key(kind: str, layers: Sequence[int]) -> tuple[int, int]:
    """Where a cell's copy joins the batch, in forward order: ``(layer, 0)`` is the input of
    block ``layer`` (windows), ``(layer, 1)`` its output (restored hidden states)."""
    return (layers[0], 1) if kind == "resid" else (layers[0], 0)


@dataclass(eq=False, repr=False)  # TL formats each hook's repr: keep tensors out
class TraceForward:
    """Private intervention: one traced forward of a single-row prompt.

    Adds ``noise`` ``[pos, d_model]`` to the token embeddings (row 0 is the noised run), then
    appends each cell's copy of row 0 at its join point and writes the clean values of its
    restored states (``clean[(site, layer)]`` is ``[pos, d_model]``). Cells must be sorted by
    :func:`join_key`; cell ``c`` is row ``c + 1``. The unembedding sees the last position only.
    """

    noise: Tensor
    cells: list[tuple[Cell, list[int]]]
    clean: dict[tuple[str, int], Tensor]

    def hooks(self, model: Any) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = [("hook_embed", self._add_noise)]
        joins: dict[tuple[int, int], list[int]] = {}
        writes: dict[tuple[str, int], list[int]] = {}
        for c, ((kind, _, _), layers) in enumerate(self.cells):
            joins.setdefault(join_key(kind, layers), []).append(c)
            if kind != "resid":
                for layer in layers:
                    writes.setdefault((KIND_SITES[kind], layer), []).append(c)
        for (layer, stage), cs in joins.items():
            name = hook_name("resid_post" if stage else "resid_pre", layer)
            out.append((name, self._grow(cs, layer if stage else None)))
        for (site, layer), cs in writes.items():
            out.append((hook_name(site, layer), self._restore(site, layer, cs)))
        out.append((hb.UNEMBED_INPUT_HOOK, lambda act, hook: act[:, -1:]))
        return out

    def _add_noise(self, act: Tensor, hook: Any) -> Tensor:
        return act + self.noise.to(act.device, act.dtype)

    def _grow(self, cs: list[int], resid_layer: int | None) -> Callable[..., Tensor]:
        """Append one copy of row 0 per cell; a hidden-state cell gets its clean value."""
        pos = torch.tensor([self.cells[c][0][2] for c in cs])
        value = self.clean[("resid_post", resid_layer)][pos] if resid_layer is not None else None

        def grow(act: Tensor, hook: Any) -> Tensor:
            new = act[:1].repeat(len(cs), 1, 1)
            if value is not None:
                new[torch.arange(len(cs)), pos.to(act.device)] = value.to(act.device, act.dtype)
            return torch.cat([act, new])

        return grow

    def _restore(self, site: str, layer: int, cs: list[int]) -> Callable[..., Tensor]:
        rows = torch.tensor(cs) + 1
        pos = torch.tensor([self.cells[c][0][2] for c in cs])
        value = self.clean[(site, layer)][pos]

        def restore(act: Tensor, hook: Any) -> Tensor:
            act = act.clone()
            act[rows.to(act.device), pos.to(act.device)] = value.to(act.device, act.dtype)
            return act

        return restore


def trace_prompt(
    model: Any,
    tokens: Tensor,
    noise: Tensor,
    cells: list[tuple[Cell, list[int]]],
    clean: dict[tuple[str, int], Tensor],
    answer: int,
    *,
    batch_size: int,
    step: Callable[[], None] = lambda: None,
) -> tuple[Tensor, Tensor]:
    """Answer probabilities of one prompt's cells under each noise sample.

    Args:
        tokens: ``[1, pos]`` (no padding).
        noise: ``[samples, pos, d_model]``, zero outside the subject.
        cells: ``(cell, restored layers)``, any order.
        clean: the clean run's ``[pos, d_model]`` values per (site, layer).
        batch_size: rows per forward (the noised run and ``batch_size - 1`` cells).
        step: called after each forward (progress).

    Returns:
        ``[cells, samples]`` restored and ``[samples]`` noised probabilities (float64).
    """
    order = sorted(range(len(cells)), key=lambda c: join_key(cells[c][0][0], cells[c][1]))
    per = max(1, batch_size - 1)
    chunks = [order[i : i + per] for i in range(0, len(order), per)] or [[]]
    restored = torch.empty(len(cells), noise.shape[0], dtype=torch.float64)
    corrupt = torch.empty(noise.shape[0], dtype=torch.float64)
    for s in range(noise.shape[0]):
        for k, chunk in enumerate(chunks):
            run = TraceForward(noise[s], [cells[c] for c in chunk], clean)
            with torch.no_grad(), apply(model, interventions=[run]):
                logits = model(tokens)
            probs = logits[:, -1].float().softmax(-1)[:, answer].double().cpu()
            restored[chunk, s] = probs[1:]
            if k == 0:
                corrupt[s] = probs[0]
            step()
    return restored, corrupt
