"""Dictionary folders: lens's own format, SAELens's and eai-sparsify's (read without importing
either package; written in SAELens's too).

* lens: ``dictionary.json`` (the config, readable) and ``dictionary.safetensors`` (weights,
  with the config and a sha256 of the tensors in its metadata: a corrupt or truncated file
  raises :class:`lens.stats.CheckpointError`).
* SAELens: ``cfg.json`` + ``sae_weights.safetensors`` with ``W_enc [d_in, d_sae]``,
  ``W_dec [d_sae, d_in]``, ``b_enc``, ``b_dec`` (``threshold`` for jumprelu);
  ``architecture`` ``standard`` | ``topk`` | ``jumprelu``; the hook is a TransformerLens name
  (``metadata.hook_name`` in 6.x, ``hook_name`` / ``hook_point`` before).
* eai-sparsify: ``cfg.json`` (``d_in``, ``k``, ``num_latents`` or ``expansion_factor``,
  ``transcode``) + ``sae.safetensors`` with ``encoder.weight [d_sae, d_in]``,
  ``encoder.bias``, ``W_dec [d_sae, d_in]``, ``b_dec``. It encodes ``relu`` then top-k of
  ``(x - b_dec) W_enc^T + b`` (no ``b_dec`` subtraction for transcoders). Its hookpoints are
  Hugging Face module names: ``layers.N`` / ``h.N`` (block output: ``resid_post``),
  ``layers.N.mlp`` / ``h.N.mlp`` (``mlp_out``; a transcoder there reads the MLP's normalised
  input), ``layers.N.self_attn`` / ``h.N.attn`` (``attn_out``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from interventions.dictionary import MLP_NORMALISED_IN, SAE, Activation, Transcoder
from interventions.sites import site_of
from lens.stats.checkpoint import CheckpointError, load_tensors, save_tensors

FORMAT = "lens.dictionary/1"
LENS_FILES = ("dictionary.json", "dictionary.safetensors")
SAELENS_FILES = ("cfg.json", "sae_weights.safetensors")
SPARSIFY_FILES = ("cfg.json", "sae.safetensors")
SAELENS_VERSION = "6.0.0"  # the cfg.json layout written (6.x: hook name under "metadata")


def save(sae: SAE, folder: str | Path) -> Path:
    """Write ``sae`` in lens's format (``dictionary.json`` + checksummed safetensors).

    Example:
        >>> import tempfile, torch
        >>> sae = SAE(torch.eye(2), torch.zeros(2), torch.eye(2), torch.zeros(2),
        ...           site="resid_post", layer=0, activation="relu")
        >>> back = load(save(sae, tempfile.mkdtemp()))
        >>> torch.equal(back.W_dec, sae.W_dec), back.site
        (True, 'resid_post')
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    config = sae.config()
    json.dumps(config)  # JSON-safe before anything is written
    save_tensors(out / LENS_FILES[1], sae.tensors(), {"config": config}, FORMAT)
    (out / LENS_FILES[0]).write_text(json.dumps(config, indent=2) + "\n")
    return out


def load(folder: str | Path, *, hookpoint: str | None = None, strict: bool = True) -> SAE:
    """Load a dictionary folder in lens's, SAELens's or eai-sparsify's format (detected from
    the files present). ``hookpoint`` picks one sub-folder of a multi-hookpoint sparsify
    checkpoint (e.g. ``"layers.6"``). ``strict=False``: apply it to models whose weights
    differ from the ones it was trained on (same shape; see :class:`SAE`)."""
    sae = _load_any(folder, hookpoint)
    sae.strict = bool(strict)
    return sae


def _load_any(folder: str | Path, hookpoint: str | None) -> SAE:
    path = Path(folder)
    if hookpoint is not None:
        path = path / hookpoint
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder: give a dictionary folder")
    if all((path / f).is_file() for f in LENS_FILES):
        return _load_lens(path)
    if all((path / f).is_file() for f in SAELENS_FILES):
        return _load_saelens(path)
    if all((path / f).is_file() for f in SPARSIFY_FILES):
        return _load_sparsify(path)
    subs = sorted(p.name for p in path.iterdir() if (p / "cfg.json").is_file())
    hint = f" It holds one per hookpoint: pass hookpoint= one of {subs}." if subs else ""
    raise FileNotFoundError(
        f"{path} holds no dictionary: expected {' + '.join(LENS_FILES)} (lens), "
        f"{' + '.join(SAELENS_FILES)} (SAELens) or {' + '.join(SPARSIFY_FILES)} "
        f"(eai-sparsify).{hint}"
    )


def _load_lens(path: Path) -> SAE:
    tensors, record = load_tensors(path / LENS_FILES[1], FORMAT)
    return SAE.from_parts(record["config"], tensors)


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(file), framework="pt") as fh:
            return {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(
            f"{file} is corrupt or truncated ({exc}): download or write it again"
        ) from exc


def _read_cfg(file: Path) -> dict[str, Any]:
    try:
        cfg = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{file} is not valid JSON ({exc})") from exc
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{file} must hold a JSON object")
    return cfg


def _need(tensors: dict[str, torch.Tensor], names: tuple[str, ...], file: Path) -> None:
    missing = [n for n in names if n not in tensors]
    if missing:
        raise CheckpointError(f"{file} lacks tensors {missing}; it holds {sorted(tensors)}")


def _built(file: Path, build: Any) -> SAE:
    try:
        return build()
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{file} does not describe a usable dictionary: {exc}") from exc


def _load_saelens(path: Path) -> SAE:
    cfg = _read_cfg(path / SAELENS_FILES[0])
    file = path / SAELENS_FILES[1]
    tensors = _read_weights(file)
    _need(tensors, ("W_enc", "b_enc", "W_dec", "b_dec"), file)
    meta = cfg.get("metadata") or cfg.get("meta") or {}
    hook = meta.get("hook_name") or cfg.get("hook_name") or cfg.get("hook_point")
    where = site_of(str(hook)) if hook else None
    if where is None:
        raise ValueError(
            f"{path / 'cfg.json'}: hook {hook!r} is not a per-layer TransformerLens hook "
            "(blocks.L.hook_...); lens cannot place it"
        )
    arch = cfg.get("architecture", "standard")
    fn = cfg.get("activation_fn") or cfg.get("activation_fn_str") or "relu"
    k = cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
    activation: Activation
    if arch == "topk" or fn == "topk":
        activation = "topk"
    elif arch == "jumprelu":
        activation = "jumprelu"
    elif arch == "standard" and fn == "relu":
        activation = "relu"
    else:
        raise ValueError(f"{path}: SAELens architecture {arch!r} ({fn}) is not supported")
    norm = cfg.get("normalize_activations", "none")
    if norm not in ("none", "constant_norm_rescale", "layer_norm") or cfg.get(
        "finetuning_scaling_factor"
    ):
        raise ValueError(
            f"{path}: normalize_activations={norm!r} / finetuning_scaling_factor need a "
            "scaling factor SAELens folds in when saving; fold it, then load"
        )
    return _built(
        file,
        lambda: SAE(
            tensors["W_enc"].float(),
            tensors["b_enc"].float(),
            tensors["W_dec"].float(),
            tensors["b_dec"].float(),
            site=where[0],
            layer=where[1],
            activation=activation,
            k=int(k) if k is not None else None,
            threshold=tensors["threshold"].float() if "threshold" in tensors else None,
            normalize=norm,
            apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
            meta={
                "source": "saelens",
                "folder": str(path),
                "hook_name": hook,
                "model_name": meta.get("model_name") or cfg.get("model_name"),
            },
        ),
    )


_HF_POINT = re.compile(r"^(?:model\.|transformer\.|gpt_neox\.)?(?:layers|h)\.(\d+)(?:\.(\w+))?$")
_HF_SITE = {
    None: "resid_post",
    "mlp": "mlp_out",
    "self_attn": "attn_out",
    "attn": "attn_out",
    "attention": "attn_out",
}


def sparsify_site(hookpoint: str) -> tuple[str, int]:
    """``(site, layer)`` of an eai-sparsify hookpoint (a Hugging Face module name).

    Example:
        >>> sparsify_site("layers.6"), sparsify_site("h.2.mlp")
        (('resid_post', 6), ('mlp_out', 2))
    """
    m = _HF_POINT.match(hookpoint)
    if m is None or m.group(2) not in _HF_SITE:
        raise ValueError(
            f"eai-sparsify hookpoint {hookpoint!r} is not one lens can place; known forms: "
            "layers.N, layers.N.mlp, layers.N.self_attn (or h.N...)"
        )
    return _HF_SITE[m.group(2)], int(m.group(1))


def _load_sparsify(path: Path) -> SAE:
    cfg = _read_cfg(path / SPARSIFY_FILES[0])
    file = path / SPARSIFY_FILES[1]
    tensors = _read_weights(file)
    _need(tensors, ("encoder.weight", "encoder.bias", "W_dec", "b_dec"), file)
    if "W_skip" in tensors:
        raise ValueError(f"{path}: sparsify skip connections (W_skip) are not supported")
    if cfg.get("activation", "topk") != "topk":
        raise ValueError(f"{path}: sparsify activation {cfg.get('activation')!r} not supported")
    site, layer = sparsify_site(path.name)
    enc = tensors["encoder.weight"].float()
    common: dict[str, Any] = {
        "layer": layer,
        "activation": "topk",
        "k": int(cfg.get("k", 0)),
        "meta": {"source": "eai-sparsify", "folder": str(path), "hookpoint": path.name},
    }
    args = (
        enc.T.contiguous(),
        tensors["encoder.bias"].float(),
        tensors["W_dec"].float(),
        tensors["b_dec"].float(),
    )
    if cfg.get("transcode"):
        if site != "mlp_out":
            raise ValueError(f"{path}: a sparsify transcoder at {path.name} is not supported")
        return _built(
            file, lambda: Transcoder(*args, site=MLP_NORMALISED_IN, out_site="mlp_out", **common)
        )
    return _built(file, lambda: SAE(*args, site=site, **common))


def save_saelens(sae: SAE, folder: str | Path, *, model_name: str | None = None) -> Path:
    """Write ``sae`` as a SAELens 6.x folder (``cfg.json`` + ``sae_weights.safetensors``).

    Example:
        >>> import tempfile, torch
        >>> sae = SAE(torch.eye(2), torch.zeros(2), torch.eye(2), torch.zeros(2),
        ...           site="resid_pre", layer=1, activation="topk", k=1)
        >>> back = load(save_saelens(sae, tempfile.mkdtemp()))
        >>> back.in_hook, back.k
        ('blocks.1.hook_resid_pre', 1)
    """
    if isinstance(sae, Transcoder):
        raise ValueError("SAELens folders hold SAEs; save a Transcoder with lens's save()")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    arch = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu"}[sae.activation]
    cfg: dict[str, Any] = {
        "architecture": arch,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": str(sae.W_enc.dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": sae.apply_b_dec_to_input,
        "normalize_activations": sae.normalize,
        "reshape_activations": "hook_z" if sae.site == "z" else "none",
        "metadata": {
            "model_name": model_name or sae.meta.get("model_name"),
            "hook_name": sae.in_hook,
            "hook_layer": sae.layer,
            "sae_lens_version": SAELENS_VERSION,
            "sae_lens_training_version": SAELENS_VERSION,
        },
    }
    if sae.activation == "topk":
        cfg["k"] = sae.k
    tensors = {k: v.detach().cpu().contiguous() for k, v in sae.tensors().items()}
    save_file(tensors, str(out / SAELENS_FILES[1]))
    (out / SAELENS_FILES[0]).write_text(json.dumps(cfg, indent=2) + "\n")
    return out
