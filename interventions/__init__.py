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
from interventions.directions import ActivationAddition, DirectionAblation, project_out
from interventions.heads import ActivationPatch, HeadAblation
from interventions.neurons import NeuronDeactivation
from interventions.orthogonalize import Orthogonalization, orthogonalize
from interventions.shortcuts import Faithfulness, LinearShortcut

__all__ = [
    "ActivationAddition",
    "ActivationPatch",
    "DirectionAblation",
    "Faithfulness",
    "HeadAblation",
    "ForwardContext",
    "Intervention",
    "LinearShortcut",
    "NeuronDeactivation",
    "Orthogonalization",
    "forward_context",
    "from_dict",
    "orthogonalize",
    "position_mask",
    "project_out",
    "register",
]
