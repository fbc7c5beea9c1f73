"""Training TopK dictionaries: :class:`Trainer` (one step on a batch of activations) and
:func:`train` (activations streamed from a model, checkpointed, all-reduced).

The recipe (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): TopK latents; loss
= FVU (squared error over the batch's total variance) + ``aux_coeff`` x AuxK, where AuxK asks
the ``d_in // 2`` most active *dead* latents (not fired for ``dead_after_tokens`` tokens) to
reconstruct the residual error; Adam; decoder rows kept unit-norm (the gradient component
along each row is removed before the step and rows renormalised after it). Inputs are scaled
by a constant so their mean norm is ``sqrt(d_in)`` (estimated on the first buffer); the scale
is folded into the biases at the end, so the result reads raw activations.

torch.distributed: every process reads the same batches (each runs the model on the whole
buffer: the collection is not split); rank r computes the loss on rows r, r + world, ... of
each batch and gradients and firing counts are all-reduced, so every rank holds the same
dictionary (equal to one process's up to float summation order).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from interventions.dictionary import SAE, Transcoder
from lens.stats.distributed import all_reduce_sum, rank, world_size

PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")
Backward = Literal["sparse", "dense"]


class _Selected(torch.autograd.Function):
    """``pre.gather(-1, idx)`` where ``pre = inp @ W_enc.T + b_enc`` was computed without
    autograd: the backward touches only the ``idx`` latents of each row (index_add for
    ``b_enc``, a sparse ``[d_sae, rows]`` product for ``W_enc``, an embedding bag for the
    input) instead of the two dense ``[rows, d_sae]`` products of the dense backward."""

    @staticmethod
    def forward(ctx: Any, pre: Tensor, inp: Tensor, w_enc: Tensor, b_enc: Tensor, idx: Tensor):
        ctx.save_for_backward(inp, w_enc, idx)
        return pre.gather(-1, idx)

    @staticmethod
    def backward(ctx: Any, grad: Tensor):
        inp, w_enc, idx = ctx.saved_tensors
        rows, per_row = idx.shape
        flat, values = idx.reshape(-1), grad.reshape(-1)
        g_inp = g_w = g_b = None
        if ctx.needs_input_grad[1]:
            g_inp = torch.nn.functional.embedding_bag(
                idx, w_enc, per_sample_weights=grad, mode="sum"
            )
        if ctx.needs_input_grad[2]:
            which = torch.arange(rows, device=idx.device).repeat_interleave(per_row)
            sparse = torch.sparse_coo_tensor(
                torch.stack([flat, which]),
                values,
                (w_enc.shape[0], rows),
                check_invariants=False,
            )
            g_w = torch.sparse.mm(sparse, inp)
        if ctx.needs_input_grad[3]:
            g_b = torch.zeros(w_enc.shape[0], dtype=grad.dtype).index_add_(0, flat, values)
        return None, g_inp, g_w, g_b, None


def default_lr(n_latents: int) -> float:
    """2e-4 scaled by ``1 / sqrt(n_latents / 2**14)`` (the rule of eai-sparsify's trainer)."""
    return 2e-4 / math.sqrt(n_latents / 2**14)


class Trainer:
    """Optimiser state for one TopK dictionary; :meth:`step` trains on one batch.

    Args:
        sae: the starting dictionary (``activation="topk"``); its tensors are copied.
        lr: Adam learning rate (default :func:`default_lr`).
        aux_coeff: weight of the AuxK loss.
        dead_after_tokens: a latent that has not fired for this many tokens is dead.
        process_group: torch.distributed group (default: the world when initialised).
        backward: ``"sparse"`` (gradients of the encoder through the selected latents only)
            or ``"dense"`` (autograd through the full pre-activation matrix); the same maths
            up to float summation order.

    Example:
        >>> import torch
        >>> from lens.dictionaries import SAE
        >>> w = torch.nn.functional.normalize(torch.randn(32, 8), dim=-1)
        >>> sae = SAE(w.T.clone(), torch.zeros(32), w, torch.zeros(8), site="resid_post",
        ...           layer=0, k=4)
        >>> t = Trainer(sae, lr=1e-2)
        >>> stats = t.step(torch.randn(64, 8))
        >>> sorted(stats), round(float(t.params["W_dec"].detach().norm(dim=-1).max()), 5)
        (['aux', 'dead', 'fvu', 'l0'], 1.0)
    """

    def __init__(
        self,
        sae: SAE,
        *,
        lr: float | None = None,
        aux_coeff: float = 1 / 32,
        dead_after_tokens: int = 100_000,
        process_group: Any = None,
        backward: Backward = "sparse",
    ) -> None:
        if backward not in ("sparse", "dense"):
            raise ValueError(f"backward must be 'sparse' or 'dense', got {backward!r}")
        self.backward: Backward = backward
        if sae.activation != "topk" or sae.k is None:
            raise ValueError("the trainer trains TopK dictionaries (activation='topk', k=...)")
        self.sae = sae
        self.k = sae.k
        self.subtract = sae.apply_b_dec_to_input
        # the encoder is held as [d_sae, d_in] (one row per latent, as F.linear wants it)
        self.params = {
            name: torch.nn.Parameter(
                (sae.W_enc.T if name == "W_enc" else getattr(sae, name)).detach().float().clone()
            )
            for name in PARAMS
        }
        self.lr = default_lr(sae.d_sae) if lr is None else float(lr)
        self.opt = torch.optim.Adam(list(self.params.values()), lr=self.lr, eps=6.25e-10)
        self.aux_coeff = float(aux_coeff)
        self.dead_after = int(dead_after_tokens)
        self.since_fired = torch.zeros(sae.d_sae, dtype=torch.long)
        self.group = process_group
        self.normalise_decoder()

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        w = self.params["W_dec"]
        w.div_(w.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    def _pre(self, x: Tensor) -> Tensor:
        """Pre-activations of every latent (one dense matmul; its backward is the other)."""
        p = self.params
        inp = x - p["b_dec"] if self.subtract else x
        return torch.nn.functional.linear(inp, p["W_enc"], p["b_enc"])

    def _decode(self, idx: Tensor, vals: Tensor) -> Tensor:
        return torch.nn.functional.embedding_bag(
            idx, self.params["W_dec"], per_sample_weights=vals, mode="sum"
        )

    def step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        """One Adam step on the batch ``x`` (reconstruct ``y``, default ``x``); returns the
        batch's FVU, mean L0, AuxK loss and fraction of dead latents."""
        y = x if y is None else y
        me, world = rank(self.group), world_size(self.group)
        total_var = (y - y.mean(0)).pow(2).sum().clamp_min(1e-12)
        mine_x, mine_y = x[me::world], y[me::world]
        p = self.params
        dead = self.since_fired > self.dead_after
        n_dead = int(dead.sum())
        use_aux = bool(n_dead and self.aux_coeff > 0 and mine_x.shape[0] > 0)
        k_aux = min(x.shape[-1] // 2, n_dead)
        with torch.enable_grad():
            if self.backward == "dense":
                pre = self._pre(mine_x)
            else:
                inp = mine_x - p["b_dec"] if self.subtract else mine_x
                with torch.no_grad():
                    pre = torch.nn.functional.linear(inp, p["W_enc"], p["b_enc"])
            idx = pre.detach().topk(self.k, dim=-1, sorted=False).indices
            aux_idx = idx[:, :0]
            if use_aux:
                masked = torch.where(dead, pre.detach(), torch.full_like(pre, -math.inf))
                aux_idx = masked.topk(k_aux, dim=-1, sorted=False).indices
            if self.backward == "dense":
                chosen = pre.gather(-1, torch.cat([idx, aux_idx], -1))
            else:
                both = torch.cat([idx, aux_idx], -1)
                chosen = _Selected.apply(pre, inp, p["W_enc"], p["b_enc"], both)
            vals = torch.relu(chosen[:, : self.k])
            recon = self._decode(idx, vals) + p["b_dec"]
            err = mine_y - recon
            fvu = err.pow(2).sum() / total_var
            aux = torch.zeros(())
            if use_aux:
                scale = min(n_dead / (x.shape[-1] // 2), 1.0)
                e_hat = self._decode(aux_idx, torch.relu(chosen[:, self.k :]))
                aux = scale * (e_hat - err.detach()).pow(2).sum() / total_var
            loss = fvu + self.aux_coeff * aux
            grads = torch.autograd.grad(loss, list(p.values()), allow_unused=True)
        on = vals.detach() > 0
        fired = torch.zeros(self.sae.d_sae, dtype=torch.long).index_add_(
            0, idx[on], torch.ones(int(on.sum()), dtype=torch.long)
        )
        feats_active = on.sum().float()
        stats = torch.stack([fvu.detach(), aux.detach(), feats_active])
        if world == 1:  # nothing to all-reduce: no flattened copy of every gradient
            for grad, v in zip(grads, p.values()):
                v.grad = grad if grad is not None else torch.zeros_like(v)
            fired_all = fired.float()
            fvu_all, aux_all, active = stats.tolist()
        else:
            flat = torch.cat(
                [
                    g.flatten() if g is not None else torch.zeros(v.numel())
                    for g, v in zip(grads, p.values())
                ]
                + [fired.double().float(), stats]
            )
            flat = all_reduce_sum(flat, self.group)
            offset = 0
            for v in p.values():
                v.grad = flat[offset : offset + v.numel()].view_as(v).clone()
                offset += v.numel()
            fired_all = flat[offset : offset + self.sae.d_sae]
            fvu_all, aux_all, active = flat[offset + self.sae.d_sae :].tolist()
        with torch.no_grad():  # drop the gradient along each decoder row (it only rescales)
            w, g = p["W_dec"], p["W_dec"].grad
            assert g is not None
            g -= (g * w).sum(-1, keepdim=True) * w
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.normalise_decoder()
        self.since_fired += x.shape[0]
        self.since_fired[fired_all > 0] = 0
        return {
            "fvu": fvu_all,
            "aux": aux_all,
            "l0": active / x.shape[0],
            "dead": float((self.since_fired > self.dead_after).float().mean()),
        }

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {f"param.{k}": v.detach() for k, v in self.params.items()}
        for name, v in self.params.items():
            st = self.opt.state.get(v, {})
            for key in ("step", "exp_avg", "exp_avg_sq"):
                if key in st:
                    out[f"adam.{name}.{key}"] = (
                        st[key].detach().reshape(-1 if key == "step" else st[key].shape)
                    )
        out["since_fired"] = self.since_fired
        return out

    def restore(self, tensors: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for name, v in self.params.items():
                v.copy_(tensors[f"param.{name}"])
                if f"adam.{name}.step" in tensors:
                    self.opt.state[v] = {
                        "step": tensors[f"adam.{name}.step"].reshape(()).clone(),
                        "exp_avg": tensors[f"adam.{name}.exp_avg"].clone(),
                        "exp_avg_sq": tensors[f"adam.{name}.exp_avg_sq"].clone(),
                    }
        self.since_fired = tensors["since_fired"].clone()

    def result(self, scale_in: float = 1.0, scale_out: float = 1.0, meta: Any = None) -> SAE:
        """The trained dictionary, reading raw activations: inputs were multiplied by
        ``scale_in`` and targets by ``scale_out`` during training; both are folded in."""
        p = {k: v.detach().clone() for k, v in self.params.items()}
        w_enc = (p["W_enc"].T * (scale_in / scale_out)).contiguous()
        b_enc, b_dec = p["b_enc"] / scale_out, p["b_dec"] / scale_out
        sae = self.sae
        common: dict[str, Any] = {
            "site": sae.site,
            "layer": sae.layer,
            "activation": "topk",
            "k": self.k,
            "apply_b_dec_to_input": sae.apply_b_dec_to_input,
            "meta": dict(sae.meta if meta is None else meta),
        }
        if isinstance(sae, Transcoder):
            return Transcoder(w_enc, b_enc, p["W_dec"], b_dec, out_site=sae.out_site, **common)
        return SAE(w_enc, b_enc, p["W_dec"], b_dec, **common)
