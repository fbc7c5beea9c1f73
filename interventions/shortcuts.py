"""LinearShortcut: an affine map from one layer's residual stream to a later layer's.

``z_hat = beta * W h + b`` with ``h = blocks.{src}.hook_resid_post`` and
``z = blocks.{dst}.hook_resid_post``. Two estimators:

* ``"jacobian"`` -- the linear relational embedding estimate (Hernandez et al.): per sample
  ``J_i = dz/dh`` at the chosen position (other positions held fixed), ``W = mean J_i``,
  ``b = mean (z_i - J_i h_i)``.
* ``"lstsq"`` -- ridge least squares on the collected ``(h, z)`` pairs (bias unpenalised).

Two ways to use it:

* :meth:`LinearShortcut.predict` stops the forward at ``src`` (``stop_at_layer``), so layers
  ``src+1..`` never run, and decodes ``z_hat`` through the final norm and unembedding.
* As an intervention (``lens.apply(model, shortcut)``): ``h`` is captured at ``src`` and
  ``blocks.{dst}.hook_resid_post`` is replaced by ``z_hat`` (at every position); the layers
  still run, so this form saves no compute. With ``dst`` the last layer both forms give the
  same logits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interventions._common import (
    as_layer,
    check_d_model,
    finite_float,
    tensor_from_json,
    tensor_to_json,
)
from interventions.base import HookPair, check_layers, register
from interventions.readout import decode

METHODS = ("jacobian", "lstsq")
FIT_POSITIONS = ("last", "all")
_WEIGHTS_FILE = "shortcut.safetensors"
_META_FILE = "shortcut.json"


@dataclass
class Faithfulness:
    """Top-1 agreement between shortcut decoding and the full model at the last position."""

    agreement: float
    n: int
    shortcut_top1: Tensor = field(repr=False)
    model_top1: Tensor = field(repr=False)


@register
@dataclass(eq=False)
class LinearShortcut:
    """``z_hat = beta * weight @ h + bias`` from layer ``src_layer`` to ``dst_layer``.

    Build with :meth:`fit`, or directly from a ``[d_model, d_model]`` weight and a
    ``[d_model]`` bias. ``meta`` holds JSON-safe notes about the fit.

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> prompts = [[1, 5, 9, 2], [3, 4, 8], [7, 7, 1, 6, 2]]
        >>> sc = LinearShortcut.fit(model, prompts, src_layer=0, method="jacobian", progress=False)
        >>> sc.predict(model, torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 257])
    """

    weight: Tensor
    bias: Tensor
    src_layer: int
    dst_layer: int
    beta: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.src_layer = as_layer(self.src_layer, "src_layer")
        self.dst_layer = as_layer(self.dst_layer, "dst_layer")
        if self.dst_layer < self.src_layer:
            raise ValueError(
                f"dst_layer ({self.dst_layer}) must be >= src_layer ({self.src_layer})"
            )
        self.beta = finite_float(self.beta, "beta")
        w, b = torch.as_tensor(self.weight), torch.as_tensor(self.bias)
        if w.ndim != 2 or w.shape[0] != w.shape[1]:
            raise ValueError(f"weight must be square [d_model, d_model], got {tuple(w.shape)}")
        if b.ndim != 1 or b.shape[0] != w.shape[0]:
            raise ValueError(f"bias must be [{w.shape[0]}], got {tuple(b.shape)}")
        for name, t in (("weight", w), ("bias", b)):
            if not t.is_floating_point():
                raise TypeError(f"{name} must be a float tensor, got {t.dtype}")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} contains NaN or inf")
        json.dumps(self.meta)  # must be JSON-safe
        self.weight, self.bias = w.detach().clone(), b.detach().clone()

    # ------------------------------------------------------------------ applying
    def transform(self, h: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """``beta * W h + b`` in ``h``'s device and dtype."""
        w = self.weight.to(h.device, h.dtype)
        return self.beta * (h @ w.T) + self.bias.to(h.device, h.dtype)

    def _check(self, model: Any) -> None:
        check_layers([self.src_layer, self.dst_layer], model, "LinearShortcut")
        check_d_model(self.bias, model, "LinearShortcut")

    def hooks(self, model: Any) -> list[HookPair]:
        self._check(model)
        dst = f"blocks.{self.dst_layer}.hook_resid_post"
        if self.src_layer == self.dst_layer:
            return [(dst, lambda act, hook: self.transform(act))]
        captured: dict[str, Tensor] = {}

        def capture(act: Tensor, hook: Any) -> None:
            captured["h"] = act

        def replace(act: Tensor, hook: Any) -> Tensor:
            h = captured.pop("h", None)
            if h is None or h.shape != act.shape:
                raise RuntimeError("LinearShortcut: no matching source activation was captured")
            return self.transform(h)

        return [(f"blocks.{self.src_layer}.hook_resid_post", capture), (dst, replace)]

    def predict(
        self,
        model: Any,
        inputs: Any,
        attention_mask: Int[Tensor, "batch pos"] | None = None,
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits from ``decode(z_hat)``; the forward stops after block ``src_layer``.

        Args:
            model: the TransformerBridge the shortcut was fitted on.
            inputs: a ``[batch, pos]`` token tensor, a ``lens.tokens.Batch``, or prompts
                (strings or token-id lists; left-padded).
            attention_mask: mask for a token tensor (default: all ones).

        For ``dst_layer`` below the last layer this is a logit-lens readout of the predicted
        residual at ``dst_layer`` (the later layers are not run). The map and the decoding run
        in float32 whatever the model's dtype (float32 logits).
        """
        self._check(model)
        tokens, mask = _tokens_and_mask(model, inputs, attention_mask)
        h = _resid_post(model, tokens, mask, self.src_layer)
        return decode(model, self.transform(h.float()))  # float32 also for bf16 models

    def faithfulness(self, model: Any, prompts: Any, batch_size: int = 16) -> Faithfulness:
        """Top-1 agreement of :meth:`predict` with the full model at each prompt's last token.

        Example:
            >>> import lens, torch
            >>> model = lens.load_model(lens.tiny_config("llama"))
            >>> sc = LinearShortcut(torch.eye(64), torch.zeros(64), 2, 2)
            >>> sc.faithfulness(model, [[1, 2, 3], [4, 5]]).agreement
            1.0
        """
        self._check(model)
        ours, theirs = [], []
        rows = _as_rows(model, prompts)
        for start in range(0, len(rows), batch_size):
            tokens, mask = _pad(rows[start : start + batch_size], model)
            last = _last_positions(mask)
            pick = torch.arange(tokens.shape[0])
            with torch.no_grad():
                full = model(tokens, attention_mask=mask)
                fast = self.predict(model, tokens, mask)
            theirs.append(full[pick, last].argmax(-1).cpu())
            ours.append(fast[pick, last].argmax(-1).cpu())
        a, b = torch.cat(ours), torch.cat(theirs)
        return Faithfulness(float((a == b).double().mean()), int(a.numel()), a, b)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        model: Any,
        prompts: Any,
        src_layer: int,
        dst_layer: int | None = None,
        method: str = "jacobian",
        positions: str = "last",
        beta: float = 1.0,
        *,
        ridge: float = 1e-6,
        batch_size: int = 8,
        chunk: int = 64,
        progress: bool = True,
    ) -> LinearShortcut:
        """Fit the map from ``blocks.{src}.hook_resid_post`` to ``blocks.{dst}.hook_resid_post``.

        Args:
            model: a TransformerBridge (hooks already installed on it stay active).
            prompts: token-id lists, a ``[batch, pos]`` tensor or a ``Batch`` (tokenize text
                with ``lens.tokens.batch``).
            src_layer: source layer.
            dst_layer: target layer (default: the last layer).
            method: ``"jacobian"`` (mean Jacobian, LRE) or ``"lstsq"`` (ridge regression).
            positions: ``"last"`` real token of each prompt, or ``"all"`` real tokens.
            beta: scale on ``W h`` when applied (stored; does not affect fitting).
            ridge: lstsq penalty relative to the mean eigenvalue of the centred Gram matrix.
            batch_size: prompts per forward for lstsq.
            chunk: Jacobian rows per backward pass (memory/speed trade-off).
            progress: show a tqdm bar.

        ``src == dst`` gives the identity exactly (for lstsq by definition; the Jacobian
        estimate computes it).
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
        if positions not in FIT_POSITIONS:
            raise ValueError(f"positions must be one of {list(FIT_POSITIONS)}, got {positions!r}")
        n_layers = int(model.cfg.n_layers)
        dst = n_layers - 1 if dst_layer is None else as_layer(dst_layer, "dst_layer")
        src = as_layer(src_layer, "src_layer")
        check_layers([src, dst], model, "LinearShortcut.fit")
        if dst < src:
            raise ValueError(f"dst_layer ({dst}) must be >= src_layer ({src})")
        ridge = finite_float(ridge, "ridge")
        if ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        if int(chunk) < 1 or int(batch_size) < 1:
            raise ValueError("chunk and batch_size must be >= 1")
        rows = _as_rows(model, prompts)
        meta: dict[str, Any] = {"method": method, "positions": positions, "n_prompts": len(rows)}
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
        return cls(w.to(dtype), b.to(dtype), src, dst, beta, meta)

    # ------------------------------------------------------------------ data
    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "weight": tensor_to_json(self.weight),
            "bias": tensor_to_json(self.bias),
            "src_layer": self.src_layer,
            "dst_layer": self.dst_layer,
            "beta": self.beta,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> LinearShortcut:
        return cls(
            tensor_from_json(spec["weight"]),
            tensor_from_json(spec["bias"]),
            spec["src_layer"],
            spec["dst_layer"],
            spec["beta"],
            dict(spec.get("meta", {})),
        )

    def save(self, directory: str | Path) -> Path:
        """Write ``shortcut.safetensors`` (weight, bias) and ``shortcut.json`` to ``directory``."""
        from safetensors.torch import save_file  # noqa: PLC0415

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {"weight": self.weight.contiguous(), "bias": self.bias.contiguous()},
            str(folder / _WEIGHTS_FILE),
        )
        spec = {k: v for k, v in self.to_dict().items() if k not in ("weight", "bias")}
        (folder / _META_FILE).write_text(json.dumps(spec, indent=2))
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> LinearShortcut:
        """Read a shortcut written by :meth:`save` (no pickle involved)."""
        from safetensors.torch import load_file  # noqa: PLC0415

        folder = Path(directory)
        for name in (_WEIGHTS_FILE, _META_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} not found: not a saved LinearShortcut")
        spec = json.loads((folder / _META_FILE).read_text())
        if spec.get("type") != cls.__name__:
            raise ValueError(
                f"{folder / _META_FILE} describes {spec.get('type')!r}, not {cls.__name__}"
            )
        tensors = load_file(str(folder / _WEIGHTS_FILE))
        return cls(
            tensors["weight"],
            tensors["bias"],
            spec["src_layer"],
            spec["dst_layer"],
            spec["beta"],
            dict(spec.get("meta", {})),
        )


# ---------------------------------------------------------------------- helpers
def _hook_point(model: Any, name: str) -> Any:
    hook_dict = model.hook_dict
    if name in hook_dict:
        return hook_dict[name]
    from transformer_lens.model_bridge.bridge_core import (  # noqa: PLC0415
        build_alias_to_canonical_map,
    )

    return hook_dict[build_alias_to_canonical_map(hook_dict)[name]]


@contextmanager
def _temporary_hooks(model: Any, pairs: Sequence[tuple[str, Any]]) -> Iterator[None]:
    """Install forward hooks for the block's duration and remove exactly those."""
    installed: list[tuple[Any, Any]] = []
    try:
        for name, fn in pairs:
            point = _hook_point(model, name)
            installed.append((point, point.add_hook(fn, dir="fwd")))
        yield
    finally:
        while installed:
            point, handle = installed.pop()
            handle.hook.remove()
            point.fwd_hooks[:] = [h for h in point.fwd_hooks if h is not handle]


def _resid_post(model: Any, tokens: Tensor, mask: Tensor | None, layer: int) -> Tensor:
    """``blocks.{layer}.hook_resid_post``, stopping the forward there when possible."""
    if layer + 1 < int(model.cfg.n_layers):
        return model(tokens, attention_mask=mask, stop_at_layer=layer + 1)
    grab: dict[str, Tensor] = {}
    with _temporary_hooks(model, [(f"blocks.{layer}.hook_resid_post", _store(grab, "h"))]):
        model(tokens, attention_mask=mask)
    return grab["h"]


def _store(box: dict[str, Tensor], key: str) -> Any:
    def fn(act: Tensor, hook: Any) -> None:
        box[key] = act

    return fn


def _as_rows(model: Any, prompts: Any) -> list[list[int]]:
    """A Batch (tokens + attention_mask), a tensor or token-id lists -> unpadded id lists."""
    if hasattr(prompts, "tokens") and hasattr(prompts, "attention_mask"):
        tokens, mask = prompts.tokens, prompts.attention_mask
    elif isinstance(prompts, Tensor):
        tokens = prompts if prompts.ndim == 2 else prompts[None]
        mask = torch.ones_like(tokens)
    else:
        items = [prompts] if isinstance(prompts, str) else list(prompts)
        if not items:
            raise ValueError("no prompts given")
        if any(isinstance(p, str) for p in items):
            raise TypeError(
                "text prompts must be tokenized first (interventions never tokenizes): pass "
                "lens.tokens.batch(model, prompts) or lists of token ids"
            )
        else:
            rows = [p.tolist() if isinstance(p, Tensor) else list(p) for p in items]
            if any(not r or not all(isinstance(t, int) for t in r) for r in rows):
                raise ValueError("prompts must be non-empty lists of token ids (or a Batch)")
            return rows
    if tokens.shape[0] == 0:
        raise ValueError("no prompts given")
    rows = [t[m.bool()].tolist() for t, m in zip(tokens, mask)]
    if any(not r for r in rows):
        raise ValueError("a prompt has no real tokens")
    return rows


def _pad(rows: list[list[int]], model: Any) -> tuple[Tensor, Tensor]:
    """Left-pad token-id lists (pad id irrelevant: masked)."""
    width = max(len(r) for r in rows)
    device = next(model.parameters()).device
    tokens = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, width - len(r) :] = torch.tensor(r)
        mask[i, width - len(r) :] = 1
    return tokens.to(device), mask.to(device)


def _last_positions(mask: Tensor) -> Tensor:
    idx = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), idx, torch.full_like(idx, -1)).max(dim=1).values


def _tokens_and_mask(model: Any, inputs: Any, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    if isinstance(inputs, Tensor):
        return (inputs if inputs.ndim == 2 else inputs[None]), mask
    if hasattr(inputs, "tokens") and hasattr(inputs, "attention_mask"):
        return inputs.tokens, inputs.attention_mask
    return _pad(_as_rows(model, inputs), model)


def _fit_lstsq(
    model: Any,
    rows: list[list[int]],
    src: int,
    dst: int,
    positions: str,
    ridge: float,
    batch_size: int,
    progress: bool,
) -> tuple[Tensor, Tensor, int]:
    hs, zs = [], []
    grab: dict[str, Tensor] = {}
    hooks = [
        (f"blocks.{src}.hook_resid_post", _store(grab, "h")),
        (f"blocks.{dst}.hook_resid_post", _store(grab, "z")),
    ]
    starts = range(0, len(rows), batch_size)
    with torch.no_grad(), _temporary_hooks(model, hooks):
        for start in tqdm(starts, desc="lstsq", disable=not progress, leave=False):
            tokens, mask = _pad(rows[start : start + batch_size], model)
            stop = dst + 1 if dst + 1 < int(model.cfg.n_layers) else None
            model(tokens, attention_mask=mask, stop_at_layer=stop)
            if positions == "last":
                keep = torch.zeros_like(mask, dtype=torch.bool)
                keep[torch.arange(mask.shape[0]), _last_positions(mask)] = True
            else:
                keep = mask.bool()
            hs.append(grab["h"][keep].double().cpu())
            zs.append(grab["z"][keep].double().cpu())
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
    positions: str,
    chunk: int,
    progress: bool,
) -> tuple[Tensor, Tensor, int]:
    d = int(model.cfg.d_model)
    device = next(model.parameters()).device
    w_sum = torch.zeros(d, d, dtype=torch.float64)
    b_sum = torch.zeros(d, dtype=torch.float64)
    n = 0
    stop = dst + 1 if dst + 1 < int(model.cfg.n_layers) else None
    for row in tqdm(rows, desc="jacobian", disable=not progress, leave=False):
        tokens = torch.tensor(row, device=device)[None]
        for p in [len(row) - 1] if positions == "last" else range(len(row)):
            jac = torch.empty(d, d, dtype=torch.float64)
            for k0 in range(0, d, chunk):
                c = min(chunk, d - k0)
                box: dict[str, Tensor] = {}

                def inject(act: Tensor, hook: Any, p: int = p, box: dict = box) -> Tensor:
                    leaf = act[:, p].detach().clone().requires_grad_(True)
                    box["h"] = leaf
                    out = act.detach().clone()
                    out[:, p] = leaf
                    return out

                hooks = [
                    (f"blocks.{src}.hook_resid_post", inject),
                    (f"blocks.{dst}.hook_resid_post", _store(box, "z")),
                ]
                with torch.enable_grad(), _temporary_hooks(model, hooks):
                    model(tokens.expand(c, -1), stop_at_layer=stop)
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
