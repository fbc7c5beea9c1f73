"""The logit lens: decode the residual stream of every layer through the final norm (its
statistics recomputed per vector) and the unembedding; with ``translator=`` the tuned lens.

Modules: :mod:`lens.logit_lens.run` (the driver, ``logit_lens``), :mod:`lens.logit_lens.args`
(argument checking), :mod:`lens.logit_lens.result` (``LogitLensResult``). The decode kernel is
:mod:`lens.readout.kernel`, shared with the tuned lens.
"""

from lens.logit_lens.result import LogitLensResult
from lens.logit_lens.run import logit_lens

__all__ = ["LogitLensResult", "logit_lens"]
