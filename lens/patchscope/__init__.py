"""Patchscopes (Ghandeharioun et al. 2024, arXiv 2401.06102): decode a hidden state by
writing it into another prompt's forward and reading what the model then predicts.

Modules: :mod:`lens.patchscope.run` (``patchscope``), :mod:`lens.patchscope.targets` (target
prompts and presets: ``identity``, ``attribute``, ``future``), :mod:`lens.patchscope.result`
(``PatchscopeResult``), :mod:`lens.patchscope.plot`.
"""

from lens.patchscope.result import PatchscopeResult
from lens.patchscope.run import RowPatch, patchscope
from lens.patchscope.targets import Target, attribute, future, identity, preset

__all__ = [
    "PatchscopeResult",
    "RowPatch",
    "Target",
    "attribute",
    "future",
    "identity",
    "patchscope",
    "preset",
]
