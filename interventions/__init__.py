"""Interventions as data: each compiles to ``(hook_name, fn)`` pairs that ``lens.apply`` installs.

Several interventions that share a hook point run in the order they are given to
``lens.apply`` (each sees the previous one's output). Installer internals (the per-forward
context, position masks, the type registry) stay importable from :mod:`interventions.base`.
"""

from interventions.base import HookFn, Intervention, Positions, from_dict
from interventions.dictionary import SAE, Transcoder
from interventions.dictionary_edits import FeatureAblation, FeatureSteering, SpliceSAE
from interventions.directions import ActivationAddition, DirectionAblation, project_out
from interventions.edges import EdgePatch
from interventions.heads import ActivationPatch, HeadAblation
from interventions.neurons import NeuronDeactivation, neurons_by_layer
from interventions.orthogonalize import Orthogonalization, orthogonalize
from interventions.shortcuts import LinearShortcut

__all__ = [
    "ActivationAddition",
    "ActivationPatch",
    "DirectionAblation",
    "EdgePatch",
    "FeatureAblation",
    "FeatureSteering",
    "HeadAblation",
    "HookFn",
    "Intervention",
    "LinearShortcut",
    "NeuronDeactivation",
    "Orthogonalization",
    "Positions",
    "SAE",
    "SpliceSAE",
    "Transcoder",
    "from_dict",
    "neurons_by_layer",
    "orthogonalize",
    "project_out",
]
