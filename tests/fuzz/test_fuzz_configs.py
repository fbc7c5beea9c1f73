"""Fuzzing every study config: each field gets wrong types, out-of-range and extreme values
(from a dict, and through a JSON file). Property: a config whose values respect the ranges
stated below (written here independently of the declarations), that round-trips through
strict JSON; or one StudyConfigError naming the offending key."""

from __future__ import annotations

import dataclasses
import json
import math

from hypothesis import given
from hypothesis import strategies as st

from lens.studies import STUDIES
from lens.studies.base import StudyConfigError
from tests.fuzz.property import OUTCOMES
from tests.fuzz.strategies import fuzz

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, 0.5, -0.0, 1e-300, 1e300, 2**63, 2**32, -1]),
    st.text(max_size=6),
    st.sampled_from(["all", "en", "lstsq", "translation", "first_token", "", "ka"]),
)
plausible = st.one_of(st.integers(0, 64), st.floats(0, 1), st.sampled_from([[-1], [0, 1], ["en"]]))
json_value = st.one_of(
    plausible,
    plausible,
    plausible,
    json_scalar,
    st.lists(json_scalar, max_size=4),
    st.lists(st.integers(-8, 8), max_size=4),
    st.dictionaries(st.text(max_size=3), st.lists(st.text(max_size=3), max_size=2), max_size=2),
)

COUNTS = {
    "batch_size",
    "samples",
    "prompts_per_language",
    "n_random_seeds",
    "example_tokens",
    "max_texts",
    "max_items",
    "max_facts",
    "max_checkpoints",
    "n_train",
    "n_val",
    "n_heldout",
    "k",
    "window",
}
SHARES = {
    "min_mass",
    "fit_fraction",
    "min_recall",
    "eval_fraction",
    "top_rate",
    "filter_rate",
    "activation_bar_ratio",
    "min_drop",
    "max_harmless_rise",
    "min_induced",
    "min_baseline_refusal",
    "train_fraction",
    "val_fraction",
    "selection_fraction",
    "min_accuracy",
    "max_layer_frac",
}
POSITIVE = {"noise", "neg_ratio"}


def independent_ranges(config) -> None:
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if isinstance(v, float):
            assert math.isfinite(v), (f.name, v)
        if v is None:
            continue
        if f.name in COUNTS:
            assert v >= 1, (f.name, v)
        if f.name in SHARES:
            assert 0 <= v <= 1, (f.name, v)
        if f.name in POSITIVE:
            assert v > 0, (f.name, v)
        if f.name == "seed":
            assert 0 <= v < 2**32
        if f.name in ("n_shots", "n_examples"):
            assert v >= 0


@st.composite
def overrides(draw, fields: list[str]):
    keys = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True))
    values = {k: draw(json_value) for k in keys}
    if draw(st.integers(0, 9)) == 0:
        values[draw(st.text(min_size=1, max_size=5))] = 1  # an unknown key now and then
    return values


def _run(name: str, values: dict) -> None:
    cls = STUDIES[name].Config
    try:
        config = cls.from_dict(values)
    except StudyConfigError as err:
        msg = str(err)
        assert msg and "\n" not in msg and msg.startswith(f"{name} config: ")
        assert any(repr(k) in msg or str(k) in msg for k in values), msg
        OUTCOMES[f"config {name}: clear error"] += 1
        return
    independent_ranges(config)
    text = json.dumps(config.to_dict(), allow_nan=False)
    assert cls.from_dict(json.loads(text)) == config
    OUTCOMES[f"config {name}: accepted"] += 1


def _study_test(name: str):
    fields = [f.name for f in dataclasses.fields(STUDIES[name].Config)]

    @fuzz(250)
    @given(values=overrides(fields))
    def test(values):
        _run(name, values)

    test.__name__ = f"test_config_{name}"
    return test


for _name in sorted(STUDIES):
    globals()[f"test_config_{_name}"] = _study_test(_name)


@fuzz(60)
@given(name=st.sampled_from(sorted(STUDIES)), raw=st.binary(max_size=40))
def test_config_files_of_any_bytes(tmp_path_factory, name, raw):
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_bytes(raw)
    try:
        STUDIES[name].Config.from_json(path)
    except StudyConfigError as err:
        assert str(err).startswith(f"{path}: ")
        OUTCOMES["config files: clear error"] += 1
    else:
        OUTCOMES["config files: accepted"] += 1
