"""Every argument of the public APIs given a value of the wrong type: each call must end in
a clear error (see tests/fuzz/property.py) naming what was wrong, with no hook left.

A table rather than Hypothesis: the wrong values are few and the cases deterministic. Each
argument is checked by name in the one function that validates it, so none gives Python's
generic "'float' object is not iterable".
"""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import ActivationAddition, DirectionAblation, NeuronDeactivation
from tests.fuzz.property import check

WRONG = {"None": None, "bool": True, "float": 1.5, "str": "x", "dict": {}, "nested": [[[1]]]}
D = 64  # tiny llama d_model


def _ll(model, arg, value):
    kw = {"layers": "all", "positions": "last", "top_k": 3, "targets": None}
    prompts = [[1, 2, 3]]
    if arg == "prompts":
        prompts = value
    else:
        kw[arg] = value
    return lambda: lens.logit_lens(model, prompts, **kw)


def _batch(model, arg, value):
    return lambda: lens.tokens.batch(model, value)


def _patch(fn):
    def build(model, arg, value):
        kw = {"answer": 5, "wrong": 6, "sites": ["resid_pre"], "positions": "last", "layers": "all"}
        clean, corrupt = [[1, 2, 3]], [[1, 4, 3]]
        if arg == "clean":
            clean = value
        else:
            kw[arg] = value
        return lambda: fn(model, clean, corrupt, **kw)

    return build


def _dla(model, arg, value):
    kw = {"answer": 5, "wrong": 6}
    prompts = [[1, 2, 3]]
    if arg == "prompts":
        prompts = value
    else:
        kw[arg] = value
    return lambda: lens.attribution.direct_logit_attribution(model, prompts, **kw)


def _intervention(cls, **base):
    def build(model, arg, value):
        def run():
            iv = cls(**{**base, arg: value})
            with lens.apply(model, iv), torch.no_grad():
                return model(torch.tensor([[1, 2, 3]]))

        return run

    return build


def _collect(model, arg, value):
    def run():
        acc = lens.stats.ActivationProbability.for_model(model, ["a"])
        kw = {"batch_size": 2, "positions": "all"}
        corpus = [([1, 2, 3], "a")]
        if arg == "corpus":
            corpus = value
        else:
            kw[arg] = value
        return lens.collect(model, corpus, accumulators=[acc], progress=False, **kw)

    return run


APIS = {
    "logit_lens": (_ll, ["prompts", "layers", "positions", "top_k", "targets"]),
    "tokens.batch": (_batch, ["prompts"]),
    "activation_patching": (
        _patch(lambda *a, **k: lens.patching.activation_patching(*a, progress=False, **k)),
        ["clean", "answer", "wrong", "sites", "positions", "layers"],
    ),
    "attribution_patching": (
        _patch(lens.patching.attribution_patching),
        ["clean", "answer", "wrong", "sites", "positions", "layers"],
    ),
    "direct_logit_attribution": (_dla, ["prompts", "answer", "wrong"]),
    "NeuronDeactivation": (
        _intervention(NeuronDeactivation, neurons={0: [1]}),
        ["neurons", "value", "positions"],
    ),
    "DirectionAblation": (
        _intervention(DirectionAblation, direction=torch.ones(D)),
        ["direction", "layers", "positions"],
    ),
    "ActivationAddition": (
        _intervention(ActivationAddition, vector=torch.ones(D), layer=0),
        ["vector", "layer", "coeff", "positions"],
    ),
    "collect": (_collect, ["corpus", "batch_size", "positions"]),
}


def _cases():
    for api, (_, args) in APIS.items():
        for arg in args:
            for label in WRONG:
                yield pytest.param(api, arg, label, id=f"{api}-{arg}-{label}")


@pytest.mark.parametrize(("api", "arg", "label"), list(_cases()))
def test_wrong_type(tiny, api, arg, label):
    build, _ = APIS[api]
    check(f"wrong types: {api}", tiny, build(tiny, arg, WRONG[label]), lambda result: None)
