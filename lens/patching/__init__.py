"""Circuit localisation by patching activations between clean and corrupted prompts.

``activation_patching`` runs every cell exactly (many cells per forward);
``attribution_patching`` estimates every cell from one forward + backward per run.
Both return a :class:`PatchingResult`.
"""

from lens.patching.atp import attribution_patching
from lens.patching.exact import activation_patching
from lens.patching.pairs import LogitDiff
from lens.patching.result import PatchingResult

__all__ = ["LogitDiff", "PatchingResult", "activation_patching", "attribution_patching"]
