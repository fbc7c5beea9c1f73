"""lens: a hook-based interpretability engine over TransformerLens.

Public API (stable names; see README.md)::

    import lens
    model = lens.load_model("organism")
    with lens.apply(model, *interventions, probes=[lens.Probe(...)]):
        logits = model(tokens)
    b = lens.tokens.batch(model, prompts, padding_side="left")
"""

from lens import generate, models, tokens
from lens.hooks import HookHandle, Probe, apply, count_hooks, hook_points, resolve_hook
from lens.models import ModelLoadError, load_model, tiny_config

__all__ = [
    "HookHandle",
    "ModelLoadError",
    "Probe",
    "apply",
    "count_hooks",
    "generate",
    "hook_points",
    "load_model",
    "models",
    "resolve_hook",
    "tiny_config",
    "tokens",
]
__version__ = "0.1.0"
