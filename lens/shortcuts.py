"""Fitting, predicting with and scoring ``interventions.LinearShortcut`` (the read side).

``interventions.LinearShortcut`` is the data (``z_hat = beta * W h + b``) and the hook that
applies it; everything that runs the model to *make* or *read* a shortcut lives here and goes
through ``lens.apply``, ``lens.Probe`` and ``lens.tokens``. Two estimators:

* ``"jacobian"`` -- the linear relational embedding estimate (Hernandez et al.): per sample
  ``J_i = dz/dh`` at the chosen position (other positions held fixed), ``W = mean J_i``,
  ``b = mean (z_i - J_i h_i)``.
* ``"lstsq"`` -- ridge least squares on the collected ``(h, z)`` pairs (bias unpenalised).

:func:`predict` stops the forward after block ``src`` (``lens.early_stop.forward_until``), so
later layers never run, and decodes ``z_hat`` at the positions asked for only. Used as an
intervention (``lens.apply(model, shortcut)``) the layers still run; with ``dst`` the last
layer both give the same logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interventions._common import finite_float
from interventions.base import HookPair, Positions
from interventions.shortcuts import LinearShortcut
from interventions.sites import hook_name, resolve_layer
from lens.early_stop import StoppingProbe, forward_until
from lens.hooks import Probe, apply, hook_points_after
from lens.readout import decode, last_token_logits
from lens.tokens import Batch, as_batch, batch

FitMethod = Literal["jacobian", "lstsq"]
FitPositions = Literal["last", "all"]
METHODS: tuple[FitMethod, ...] = ("jacobian", "lstsq")
FIT_POSITIONS: tuple[FitPositions, ...] = ("last", "all")


@dataclass
class Faithfulness:
    """Top-1 agreement between shortcut decoding and the full model at the last real token."""

    agreement: float
    n: int
    shortcut_top1: Tensor = field(repr=False)
    model_top1: Tensor = field(repr=False)


@dataclass
class _Hooks:
    """Fixed ``(hook_name, fn)`` pairs, installable with ``lens.apply``."""

    pairs: list[HookPair]

    def hooks(self, model: Any) -> list[HookPair]:
        return self.pairs


def _resid(layer: int) -> str:
    return hook_name("resid_post", layer)


def _rows(b: Batch) -> list[list[int]]:
    rows = [t[m.bool()].tolist() for t, m in zip(b.tokens, b.attention_mask)]
    if any(not r for r in rows):
        raise ValueError("a prompt has no real tokens")
    return rows


def predict(
    model: Any,
    shortcut: LinearShortcut,
    inputs: Any,
    *,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    positions: Positions = "all",
) -> Float[Tensor, "batch ... d_vocab"]:
    """Logits from ``decode(z_hat)`` at ``positions``; the forward stops after ``src_layer``.

    Args:
        model: the TransformerBridge it was fitted on.
        shortcut: the fitted map.
        inputs: a ``[batch, pos]`` token tensor, a ``lens.tokens.Batch``, or prompts (texts or
            token-id lists; left-padded).
        attention_mask: mask for a token tensor (default: no padding).
        positions: which positions to decode (see ``interventions.base.Positions``):
            ``"all"`` gives ``[batch, pos, d_vocab]``, ``"last"`` ``[batch, d_vocab]``,
            integer columns ``[batch, k, d_vocab]``.

    For ``dst_layer`` below the last layer this is a logit-lens readout of the predicted
    residual at ``dst_layer`` (the later layers are not run).

    Example:
        >>> import lens, torch
        >>> from interventions import LinearShortcut
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> sc = LinearShortcut(torch.eye(64), torch.zeros(64), 1, 2)
        >>> lens.shortcuts.predict(model, sc, torch.tensor([[1, 2, 3]]), positions="last").shape
        torch.Size([1, 257])
    """
    shortcut.check(model)
    if isinstance(inputs, Tensor):
        tokens = inputs if inputs.ndim == 2 else inputs[None]
        mask = attention_mask
    else:
        b = as_batch(model, inputs)
        tokens, mask = b.tokens, b.attention_mask
    probe = StoppingProbe(_resid(shortcut.src_layer), positions=positions)
    later = hook_points_after(model, shortcut.src_layer, same_block=False)
    with apply(model, probes=[probe]) as handle:  # the forward ends after block src
        forward_until(model, probe, later, handle, tokens, attention_mask=mask)
    h = probe.value
    return decode(model, shortcut.transform(h.float()))  # float32 logits, also on bf16 models


@torch.no_grad()
def faithfulness(
    model: Any, shortcut: LinearShortcut, prompts: Any, *, batch_size: int = 16
) -> Faithfulness:
    """Top-1 agreement of :func:`predict` with the full model at each prompt's last token.

    Example:
        >>> import lens, torch
        >>> from interventions import LinearShortcut
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> sc = LinearShortcut(torch.eye(64), torch.zeros(64), 2, 2)
        >>> lens.shortcuts.faithfulness(model, sc, [[1, 2, 3], [4, 5]]).agreement
        1.0
    """
    shortcut.check(model)
    rows = _rows(as_batch(model, prompts))
    ours, theirs = [], []
    for start in range(0, len(rows), batch_size):
        b = batch(model, rows[start : start + batch_size], padding_side="left")
        theirs.append(last_token_logits(model, b, batch_size=len(b)).argmax(-1).cpu())
        ours.append(predict(model, shortcut, b, positions="last").argmax(-1).cpu())
    a, m = torch.cat(ours), torch.cat(theirs)
    return Faithfulness(float((a == m).double().mean()), int(a.numel()), a, m)


def fit(
    model: Any,
    prompts: Any,
    *,
    src_layer: int,
    dst_layer: int | None = None,
    method: FitMethod = "jacobian",
    positions: FitPositions = "last",
    beta: float = 1.0,
    ridge: float = 1e-6,
    batch_size: int = 8,
    chunk: int = 64,
    progress: bool = False,
) -> LinearShortcut:
    """Fit the map from site ``resid_post`` (the output of block ``src_layer``) to
    ``resid_post`` of block ``dst_layer`` (``meta["site"]`` records it).

    Args:
        model: a TransformerBridge (hooks already installed on it stay active).
        prompts: texts, token-id lists, a ``[batch, pos]`` tensor or a ``lens.tokens.Batch``.
        src_layer: source layer (negative: counted from the end).
        dst_layer: target layer (default: the last layer; negative: counted from the end).
        method: ``"jacobian"`` (mean Jacobian, LRE) or ``"lstsq"`` (ridge regression).
        positions: fit on the ``"last"`` real token of each prompt, or on ``"all"`` real tokens.
        beta: scale on ``W h`` when applied (stored; does not affect fitting).
        ridge: lstsq penalty relative to the mean eigenvalue of the centred Gram matrix.
        batch_size: prompts per forward for lstsq.
        chunk: Jacobian rows per backward pass (memory/speed trade-off).
        progress: show a tqdm bar.

    ``src == dst`` gives the identity exactly (for lstsq by definition; the Jacobian
    estimate computes it).

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> prompts = [[1, 5, 9, 2], [3, 4, 8], [7, 7, 1, 6, 2]]
        >>> sc = lens.shortcuts.fit(model, prompts, src_layer=0, progress=False)
        >>> sc.src_layer, sc.dst_layer, tuple(sc.weight.shape)
        (0, 2, (64, 64))
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if positions not in FIT_POSITIONS:
        raise ValueError(f"positions must be one of {list(FIT_POSITIONS)}, got {positions!r}")
    dst = resolve_layer(model, -1 if dst_layer is None else dst_layer, what="dst_layer")
    src = resolve_layer(model, src_layer, what="src_layer")
    if dst < src:
        raise ValueError(f"dst_layer ({dst}) must be >= src_layer ({src})")
    ridge = finite_float(ridge, "ridge")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if int(chunk) < 1 or int(batch_size) < 1:
        raise ValueError("chunk and batch_size must be >= 1")
    rows = _rows(as_batch(model, prompts))
    meta: dict[str, Any] = {
        "site": "resid_post",
        "method": method,
        "positions": positions,
        "n_prompts": len(rows),
    }
    d = int(model.cfg.d_model)
    dtype = next(model.parameters()).dtype
    if method == "lstsq" and src == dst:
        w, b = torch.eye(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
        meta["n_samples"] = 0
    elif method == "jacobian":
        w, b, n = _fit_jacobian(model, rows, src, dst, positions, int(chunk), progress)
        meta["n_samples"] = n
    else:
        w, b, n = _fit_lstsq(model, rows, src, dst, positions, ridge, batch_size, progress)
        meta.update(n_samples=n, ridge=ridge)
    return LinearShortcut(w.to(dtype), b.to(dtype), src, dst, beta, meta)


def _fit_lstsq(
    model: Any,
    rows: list[list[int]],
    src: int,
    dst: int,
    positions: FitPositions,
    ridge: float,
    batch_size: int,
    progress: bool,
) -> tuple[Tensor, Tensor, int]:
    hs, zs = [], []
    stop = StoppingProbe(_resid(dst))
    probes = [Probe(_resid(src)), stop]
    later = hook_points_after(model, dst, same_block=False)
    starts = range(0, len(rows), batch_size)
    with torch.no_grad(), apply(model, probes=probes) as handle:
        for start in tqdm(starts, desc="lstsq", disable=not progress, leave=False):
            b = batch(model, rows[start : start + batch_size], padding_side="left")
            forward_until(model, stop, later, handle, b.tokens, attention_mask=b.attention_mask)
            keep = b.positions("last" if positions == "last" else "all")
            hs.append(probes[0].values.pop()[keep].double().cpu())
            zs.append(probes[1].values.pop()[keep].double().cpu())
    h, z = torch.cat(hs), torch.cat(zs)
    h_mean, z_mean = h.mean(0), z.mean(0)
    hc, zc = h - h_mean, z - z_mean
    gram = hc.T @ hc
    lam = ridge * float(gram.diagonal().mean())
    gram = gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype)
    w = torch.linalg.lstsq(gram, hc.T @ zc).solution.T  # [d_out, d_in]
    return w, z_mean - w @ h_mean, int(h.shape[0])


def _fit_jacobian(
    model: Any,
    rows: list[list[int]],
    src: int,
    dst: int,
    positions: FitPositions,
    chunk: int,
    progress: bool,
) -> tuple[Tensor, Tensor, int]:
    d = int(model.cfg.d_model)
    device = next(model.parameters()).device
    w_sum = torch.zeros(d, d, dtype=torch.float64)
    b_sum = torch.zeros(d, dtype=torch.float64)
    n = 0
    box: dict[str, Tensor] = {}
    at = {"p": 0}

    def inject(act: Tensor, hook: Any) -> Tensor:
        """Make position p of the source residual a leaf, so dz/dh can be taken."""
        leaf = act[:, at["p"]].detach().clone().requires_grad_(True)
        box["h"] = leaf
        out = act.detach().clone()
        out[:, at["p"]] = leaf
        return out

    stop = StoppingProbe(_resid(dst))  # ends each forward once block dst has run
    later = hook_points_after(model, dst, same_block=False)

    def store(act: Tensor, hook: Any) -> None:
        box["z"] = act

    taps = _Hooks([(_resid(src), inject), (_resid(dst), store)])
    with apply(model, taps, probes=[stop]) as handle:
        for row in tqdm(rows, desc="jacobian", disable=not progress, leave=False):
            tokens = torch.tensor(row, device=device)[None]
            for p in [len(row) - 1] if positions == "last" else range(len(row)):
                at["p"] = p
                jac = torch.empty(d, d, dtype=torch.float64)
                for k0 in range(0, d, chunk):
                    c = min(chunk, d - k0)
                    with torch.enable_grad():
                        forward_until(model, stop, later, handle, tokens.expand(c, -1))
                        stop.values.clear()
                        z = box["z"][:, p]  # [c, d]
                        picked = z[torch.arange(c), torch.arange(k0, k0 + c)].sum()
                        (grad,) = torch.autograd.grad(picked, box["h"])
                    jac[k0 : k0 + c] = grad.double().cpu()
                h0 = box["h"][0].detach().double().cpu()
                z0 = z[0].detach().double().cpu()
                w_sum += jac
                b_sum += z0 - jac @ h0
                n += 1
    return w_sum / n, b_sum / n, n
