"""lens: a hook-based interpretability engine over TransformerLens.

Public API (stable names; see README.md)::

    import lens
    model = lens.load_model("organism")
    with lens.apply(model, *interventions, probes=[lens.Probe(...)]):
        logits = model(tokens)
    b = lens.tokens.batch(model, prompts, padding_side="left")
"""

from lens import attribution, finders, generate, models, organism, patching, stats, tokens
from lens.collect import CollectResult, collect
from lens.hooks import GradProbe, HookHandle, Probe, apply, count_hooks, hook_points, resolve_hook
from lens.logit_lens import logit_lens
from lens.logit_lens_result import LogitLensResult
from lens.models import ModelLoadError, load_model, tiny_config
from lens.token_sets import token_sets

__all__ = [
    "CollectResult",
    "GradProbe",
    "HookHandle",
    "LogitLensResult",
    "ModelLoadError",
    "Probe",
    "apply",
    "attribution",
    "collect",
    "count_hooks",
    "finders",
    "generate",
    "hook_points",
    "load_model",
    "logit_lens",
    "models",
    "organism",
    "patching",
    "resolve_hook",
    "stats",
    "tiny_config",
    "token_sets",
    "tokens",
]
__version__ = "0.1.0"
