"""Reading the residual stream out: the final norm (statistics recomputed per vector), the
unembedding, the chunked decode kernel the logit lens and tuned lens share, and last-token
logits. One copy of each; everything that decodes goes through here.

Modules: :mod:`lens.readout.core` (``final_norm``, ``unembed``, ``decode``),
:mod:`lens.readout.kernel` (``decode_stack``, ``chunk_rows``, ``unembed_parts``),
:mod:`lens.readout.last_token` (``last_token_logits``).
"""

from lens.readout.core import decode, final_norm, unembed
from lens.readout.kernel import CHUNK_FLOATS, NORMS, Norm, chunk_rows, decode_stack, unembed_parts
from lens.readout.last_token import last_token_logits

__all__ = [
    "CHUNK_FLOATS",
    "NORMS",
    "Norm",
    "chunk_rows",
    "decode",
    "decode_stack",
    "final_norm",
    "last_token_logits",
    "unembed",
    "unembed_parts",
]
