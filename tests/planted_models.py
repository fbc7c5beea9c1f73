"""Fixtures for the planted organism's variants (built once from the shipped weights and
cached; see ``lens.organism.planted``), shared by the unit tests of each plant and the slow
recovery tests (registered in ``tests/conftest.py``), and the hand-written hook those tests
use to switch planted neurons off."""

from __future__ import annotations

import pytest

import lens


@pytest.fixture(scope="module")
def natural():
    """The shipped organism, nothing planted."""
    return lens.load_model("organism")


@pytest.fixture(scope="module")
def planted():
    """Variant ``"shared"``: every phenomenon planted, one refusal direction for all languages."""
    return lens.load_model("organism-planted")


@pytest.fixture(scope="module")
def null():
    """Variant ``"null"``: one refusal direction per language, nothing else planted."""
    return lens.load_model("organism-planted-null")


@pytest.fixture(scope="module")
def shortcut():
    """Variant ``"shortcut"``: a late path that a linear shortcut removes (fact_consistency)."""
    return lens.load_model("organism-planted-shortcut")


def zero_neurons(layer: int, neurons: list[int]):
    """A TransformerLens forward hook zeroing ``neurons`` of layer ``layer``'s MLP output
    activation (``blocks.L.mlp.hook_post``), written by hand (no lens intervention)."""

    def hook(act, hook):
        act[..., neurons] = 0
        return act

    return (f"blocks.{layer}.mlp.hook_post", hook)
