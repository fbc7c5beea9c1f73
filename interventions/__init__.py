"""Interventions as data: each compiles to ``(hook_name, fn)`` pairs that ``lens.apply`` installs.

Several interventions that share a hook point run in the order they are given to
``lens.apply`` (each sees the previous one's output).
"""

from interventions.base import (
    ForwardContext,
    Intervention,
    forward_context,
    from_dict,
    position_mask,
    register,
)

__all__ = [
    "ForwardContext",
    "Intervention",
    "forward_context",
    "from_dict",
    "position_mask",
    "register",
]
