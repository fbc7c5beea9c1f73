"""Circuit localisation by patching activations between clean and corrupted prompts.

``activation_patching`` runs every cell exactly (many cells per forward);
``attribution_patching`` estimates every cell from one forward + backward per run.
Both return a :class:`PatchingResult`. ``causal_trace`` restores clean states into a run
whose subject embeddings carry Gaussian noise (Meng et al. 2022). ``head_means`` gives
``HeadAblation(mode="mean")`` its means.
"""

from lens.patching.atp import attribution_patching
from lens.patching.exact import activation_patching
from lens.patching.means import head_means
from lens.patching.pairs import LogitDiff
from lens.patching.result import PatchingResult
from lens.patching.tracing import TraceResult, causal_trace

__all__ = [
    "LogitDiff",
    "PatchingResult",
    "TraceResult",
    "activation_patching",
    "attribution_patching",
    "causal_trace",
    "head_means",
]
