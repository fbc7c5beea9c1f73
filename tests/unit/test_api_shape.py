"""The API-shape rules (README, "API shape") hold for every public function of lens and
interventions: the model first, interventions as one keyword-only list (lens.apply takes
them positionally), progress off by default."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import interventions
import lens


def _public_functions():
    out = []
    for pkg in (lens, interventions):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            parts = info.name.split(".")
            if any(p.startswith("_") for p in parts[1:]) or parts[1] == "cli":
                continue
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if not name.startswith("_") and inspect.isfunction(obj):
                    if obj.__module__ == info.name:
                        out.append((f"{info.name}.{name}", inspect.signature(obj)))
    return out


FUNCTIONS = _public_functions()


def test_the_walk_finds_the_public_api():
    names = {name for name, _ in FUNCTIONS}
    assert {"lens.hooks.apply", "lens.collect.collect", "lens.shortcuts.predict"} <= names
    assert len(names) > 100


def test_model_comes_first():
    wrong = [
        name
        for name, sig in FUNCTIONS
        if "model" in sig.parameters
        and sig.parameters["model"].annotation not in ("str", str)  # a model's name, not one
        and next(iter(sig.parameters)) != "model"
    ]
    assert wrong == []


def test_interventions_are_one_keyword_only_list():
    """Every API that runs the model under interventions takes ``interventions=[...]``, except
    ``lens.apply`` itself, which takes them positionally (the public contract)."""
    wrong = []
    for name, sig in FUNCTIONS:
        if name == "lens.hooks.apply":
            assert next(p for p in sig.parameters.values() if p.name == "interventions").kind is (
                inspect.Parameter.VAR_POSITIONAL
            )
            continue
        for p in sig.parameters.values():
            if p.kind is p.VAR_POSITIONAL and p.name == "interventions":
                wrong.append(f"{name}: *interventions")
            elif p.name == "interventions" and p.kind is not p.KEYWORD_ONLY:
                wrong.append(f"{name}: positional interventions")
    assert wrong == []


def test_progress_is_off_by_default():
    on = [
        name
        for name, sig in FUNCTIONS
        if "progress" in sig.parameters
        and sig.parameters["progress"].default not in (False, inspect.Parameter.empty)
    ]
    assert on == []
    from lens.studies.base import StudyConfig

    assert StudyConfig().progress is False
