"""lens: a hook-based interpretability engine over TransformerLens.

Public API (stable names; see README.md)::

    import lens
    model = lens.load_model("organism")
    with lens.apply(model, ..., probes=[lens.Probe(...)]):
        logits = model(tokens)
    b = lens.tokens.batch(model, prompts, padding_side="left")

Every name is imported on first use (``import lens`` does not import torch or
TransformerLens), so ``lens --help`` starts instantly and each command pays only for what it
uses.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# public name -> module that defines it (submodules map to themselves)
_NAMES = {
    "CollectResult": "lens.collect",
    "collect": "lens.collect",
    "HookHandle": "lens.hooks",
    "Probe": "lens.hooks",
    "apply": "lens.hooks",
    "count_hooks": "lens.hooks",
    "hook_points": "lens.hooks",
    "resolve_hook": "lens.hooks",
    "GradProbe": "lens.hooks",
    "logit_lens": "lens.logit_lens",
    "LogitLensResult": "lens.logit_lens",
    "ModelLoadError": "lens.models",
    "load_model": "lens.models",
    "tiny_config": "lens.models",
    "token_sets": "lens.token_sets",
    "UnknownTokenWarning": "lens.tokens",
    "Positions": "interventions.base",
    "Site": "interventions.sites",
    "hook_name": "interventions.sites",
    "resolve_layers": "interventions.sites",
    "Faithfulness": "lens.shortcuts",
}
_SUBMODULES = (
    "attribution",
    "circuits",
    "data",
    "dictionaries",
    "finders",
    "generate",
    "models",
    "organism",
    "patching",
    "patchscope",
    "readout",
    "shortcuts",
    "stats",
    "tokens",
    "tuned_lens",
)
# Functions named like the module that defines them: ``lens.collect`` is the function, even
# after ``import lens.collect`` (the import system would otherwise rebind it to the module).
_SHADOWED = {name for name, module in _NAMES.items() if module == f"lens.{name}"}

__all__ = sorted([*_NAMES, *_SUBMODULES])

if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from interventions.base import Positions  # noqa: F401
    from interventions.sites import Site, hook_name, resolve_layers  # noqa: F401
    from lens import (  # noqa: F401
        attribution,
        data,
        dictionaries,
        finders,
        generate,
        models,
        organism,
        patching,
        patchscope,
        readout,
        shortcuts,
        stats,
        tokens,
        tuned_lens,
    )
    from lens.collect import CollectResult, collect  # noqa: F401
    from lens.hooks import (  # noqa: F401
        GradProbe,
        HookHandle,
        Probe,
        apply,
        count_hooks,
        hook_points,
        resolve_hook,
    )
    from lens.logit_lens.result import LogitLensResult  # noqa: F401
    from lens.logit_lens.run import logit_lens  # noqa: F401
    from lens.models import ModelLoadError, load_model, tiny_config  # noqa: F401
    from lens.shortcuts import Faithfulness  # noqa: F401
    from lens.token_sets import token_sets  # noqa: F401
    from lens.tokens import UnknownTokenWarning  # noqa: F401


def _version() -> str:
    """The installed distribution's version (pyproject.toml is the one place it is written)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lens-interp")
    except PackageNotFoundError:  # a checkout on sys.path that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif not name.startswith("__"):
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'lens' has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module 'lens' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _LensModule(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return  # keep the function; the module stays reachable in sys.modules
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _LensModule
