"""Study configs check every value against its field's declared type, whether built directly,
from a dict or from a JSON file, and name the key, the expected type and (for files) the file.
No model is needed."""

from __future__ import annotations

import importlib
import json
import re

import pytest

from lens.studies import STUDIES, concept_space, language_neurons, refusal
from lens.studies.base import StudyConfigError


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_study_rejects_a_non_integer_seed(name):
    config_cls = STUDIES[name].Config
    with pytest.raises(StudyConfigError, match=r"'seed' must be int, got 'zero' \(str\)"):
        config_cls.from_dict({"seed": "zero"})
    with pytest.raises(StudyConfigError, match="'seed' must be int"):
        config_cls.from_dict({"seed": True})  # a bool is not a seed
    assert config_cls.from_dict({"seed": 3}).seed == 3


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_defaults_and_quick_configs_pass_their_own_check(name):
    module = STUDIES[name]
    quick = module.quick_config()
    assert module.Config.from_dict(quick.to_dict()) == quick
    assert module.Config.from_dict({}) == module.Config()


def test_error_names_key_and_expected_type():
    with pytest.raises(ValueError) as err:
        refusal.Config.from_dict({"kl_threshold": "high"})
    assert isinstance(err.value, StudyConfigError)
    msg = str(err.value)
    assert "'kl_threshold'" in msg and "float" in msg and "'high'" in msg and "refusal" in msg


@pytest.mark.parametrize(
    ("values", "key", "expected"),
    [
        ({"languages": ["en", 3]}, "languages", "list[str] | None"),
        ({"languages": "en"}, "languages", "list[str] | None"),
        ({"positions": -1}, "positions", "list[int]"),
        ({"layers": "some"}, "layers", "'all' | list[int]"),
        ({"layers": [1, 2.5]}, "layers", "'all' | list[int]"),
        ({"induce_filter": "yes"}, "induce_filter", "bool"),
        ({"n_train": 1.5}, "n_train", "int | None"),
    ],
)
def test_wrong_values_are_rejected(values, key, expected):
    with pytest.raises(StudyConfigError) as err:
        refusal.Config.from_dict(values)
    assert f"'{key}' must be {expected}," in str(err.value)


def test_valid_values_are_accepted():
    config = refusal.Config.from_dict(
        {"kl_threshold": 1, "layers": [0, 2], "n_train": None, "languages": ["en"]}
    )
    assert config.kl_threshold == 1 and config.layers == [0, 2] and config.n_train is None
    assert language_neurons.Config.from_dict({"data": "texts"}).data == "texts"
    expected = "'tasks' must be list['translation' | 'repetition'], got ['translate']"
    with pytest.raises(StudyConfigError, match=re.escape(expected)):
        concept_space.Config.from_dict({"tasks": ["translate"]})


def test_direct_construction_is_checked_too():
    with pytest.raises(StudyConfigError, match="'kl_threshold' must be float"):
        refusal.Config(kl_threshold="high")


def test_unknown_key_still_names_the_valid_ones():
    with pytest.raises(StudyConfigError, match="unknown config keys"):
        refusal.Config.from_dict({"kl": 0.1})


def test_json_file_errors_name_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"kl_threshold": 0.1,}')
    with pytest.raises(StudyConfigError) as err:
        refusal.Config.from_json(broken)
    assert str(err.value).startswith(f"{broken}: not valid JSON")
    assert "line 1" in str(err.value)

    typed = tmp_path / "typed.json"
    typed.write_text(json.dumps({"kl_threshold": "high"}))
    with pytest.raises(StudyConfigError) as err:
        refusal.Config.from_json(typed)
    assert str(err.value).startswith(f"{typed}: ") and "'kl_threshold' must be float" in str(
        err.value
    )

    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(StudyConfigError, match="must hold a JSON object"):
        refusal.Config.from_json(listed)

    with pytest.raises(StudyConfigError, match="cannot read the config file"):
        refusal.Config.from_json(tmp_path / "missing.json")

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"kl_threshold": 0.2, "languages": ["en", "ka"]}))
    assert refusal.Config.from_json(good) == refusal.Config(
        kl_threshold=0.2, languages=["en", "ka"]
    )


# ----------------------------------------------------------------------------- ranges


def _declared(cls):
    from lens.studies.config_types import declared

    return declared(cls)


def _numeric(tp) -> bool:
    from typing import get_args

    return tp in (int, float) or any(_numeric(a) for a in get_args(tp))


def _listed(tp) -> bool:
    from typing import get_args, get_origin

    return get_origin(tp) in (list, dict) or any(_listed(a) for a in get_args(tp))


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_field_declares_its_range_next_to_its_type(name):
    """Numbers carry a Range (or name layers), lists an Items rule: nothing is left unchecked."""
    from lens.studies.config_types import Items, Layer, Range

    for key, (tp, markers) in _declared(STUDIES[name].Config).items():
        kinds = {type(m) for m in markers}
        if _numeric(tp) and key != "refusal_phrases":
            assert kinds & {Range, Layer}, f"{name}.{key} declares no Range"
        if _listed(tp) and key != "refusal_phrases":
            assert Items in kinds, f"{name}.{key} declares no Items rule"


@pytest.mark.parametrize(
    ("values", "parts"),
    [
        ({"samples": -3}, ["'samples'", "in [1, 1000]", "-3"]),
        (
            {"noise": -1, "batch_size": 0},
            ["'noise'", "> 0", "-1", "'batch_size'", "in [1, 65536]", "0"],
        ),
        ({"noise": 0.0}, ["'noise'", "> 0"]),
        ({"noise": float("nan")}, ["'noise'", "nan"]),
        ({"noise": float("inf")}, ["'noise'", "inf"]),
        ({"prompts_per_language": 0}, ["'prompts_per_language'", "in [1, 100000]"]),
        ({"window": 0}, ["'window'", ">= 1"]),
        ({"languages": []}, ["'languages'", "at least 1 entry"]),
        ({"languages": ["en", "en"]}, ["'languages'", "'en' twice"]),
        ({"samples": 2**70}, ["'samples'", "64 bits"]),
        ({"seed": -1}, ["'seed'", "[0, 4294967295]"]),
    ],
)
def test_issue_cases_and_ranges_of_causal_tracing(values, parts):
    """The issue's ``{"samples": -3}`` and ``{"noise": -1, "batch_size": 0}`` ran before."""
    from lens.studies import causal_tracing

    with pytest.raises(StudyConfigError) as err:
        causal_tracing.Config.from_dict(values)
    msg = str(err.value)
    assert msg.startswith("causal_tracing config: ") and "\n" not in msg
    for part in parts:
        assert part in msg, (part, msg)


@pytest.mark.parametrize(
    ("study", "values", "parts"),
    [
        ("refusal", {"positions": [0, -1]}, ["'positions'", "every entry <= -1", "0 is not"]),
        ("refusal", {"min_drop": 1.5}, ["'min_drop'", "in [0, 1]", "1.5"]),
        ("refusal", {"min_cosine": -2}, ["'min_cosine'", "in [-1, 1]"]),
        ("refusal", {"train_fraction": 0.8, "val_fraction": 0.2}, ["below 1", "0.8 + 0.2"]),
        ("refusal", {"layers": []}, ["'layers'", "at least 1"]),
        ("fact_consistency", {"fit_fraction": 1.0}, ["'fit_fraction'", "in (0, 1)"]),
        ("fact_consistency", {"shortcut_ridge": -1e-3}, ["'shortcut_ridge'", ">= 0"]),
        ("language_neurons", {"top_rate": 0}, ["'top_rate'", "in (0, 1]"]),
        ("language_neurons", {"max_texts": 1}, ["'max_texts'", ">= 2"]),
        ("relation_neurons", {"k_multipliers": [1.0, -2.0]}, ["'k_multipliers'", "> 0", "-2.0"]),
        ("relation_neurons", {"neg_ratio": 0}, ["'neg_ratio'", "> 0"]),
        ("concept_space", {"min_mass": -0.1}, ["'min_mass'", "in [0, 1]"]),
        ("concept_space", {"n_shots": -1}, ["'n_shots'", "in [0, 64]"]),
        # counts have an upper bound too: a typo like 10**9 is refused before any work
        ("causal_tracing", {"samples": 10**9}, ["'samples'", "in [1, 1000]", "1000000000"]),
        ("causal_tracing", {"batch_size": 10**7}, ["'batch_size'", "in [1, 65536]"]),
        ("language_neurons", {"n_random_seeds": 10**6}, ["'n_random_seeds'", "in [1, 100]"]),
        ("relation_neurons", {"n_random_seeds": 101}, ["'n_random_seeds'", "in [1, 100]"]),
        ("concept_space", {"n_shots": 65}, ["'n_shots'", "in [0, 64]"]),
        ("refusal", {"example_tokens": 10**5}, ["'example_tokens'", "in [1, 4096]"]),
    ],
)
def test_out_of_range_values_name_key_value_and_range(study, values, parts):
    with pytest.raises(StudyConfigError) as err:
        STUDIES[study].Config.from_dict(values)
    for part in parts:
        assert part in str(err.value), (part, str(err.value))


def test_range_edges_are_accepted_and_round_trip():
    from lens.studies import causal_tracing, relation_neurons

    edge = causal_tracing.Config(samples=1, noise=1e-9, batch_size=1, window=1, seed=2**32 - 1)
    assert causal_tracing.Config.from_dict(json.loads(json.dumps(edge.to_dict()))) == edge
    rn = relation_neurons.Config(min_accuracy=0.0, selection_fraction=0.999, k=1)
    assert relation_neurons.Config.from_dict(rn.to_dict()) == rn
    assert refusal.Config(train_fraction=0.5, val_fraction=0.49).val_fraction == 0.49


def test_direct_construction_and_replace_are_range_checked():
    import dataclasses

    from lens.studies import causal_tracing

    with pytest.raises(StudyConfigError, match=r"'samples' must be in \[1, 1000\]"):
        causal_tracing.Config(samples=0)
    with pytest.raises(StudyConfigError, match=r"'batch_size' must be in \[1, 65536\]"):
        dataclasses.replace(causal_tracing.quick_config(), batch_size=-5)


def test_layers_are_checked_against_the_model_when_the_study_runs():
    """The config cannot know the depth: ``for_model`` checks it, negative counts from the end."""
    import lens
    from lens.studies import fact_consistency

    model = lens.load_model(lens.tiny_config("llama"))
    n = int(model.cfg.n_layers)
    assert refusal.Config(layers=[0, -1]).for_model(model).layers == [0, n - 1]
    assert refusal.Config().for_model(model).layers == "all"
    with pytest.raises(StudyConfigError, match=rf"layer {n}, but this model has layers 0..{n - 1}"):
        refusal.Config(layers=[n]).for_model(model)
    with pytest.raises(StudyConfigError, match=rf"layer -{n + 1},"):
        refusal.Config(layers=[-(n + 1)]).for_model(model)
    # a shortcut from the last layer is empty: before the last only
    fc = fact_consistency.Config(shortcut_layers=[-1]).for_model(model)
    assert fc.shortcut_layers == [n - 2]
    with pytest.raises(StudyConfigError, match=rf"layers before the last 0..{n - 2}"):
        fact_consistency.Config(shortcut_layers=[n - 1]).for_model(model)
    # a value changed after construction is caught when the study starts
    changed = refusal.Config()
    changed.batch_size = 0
    with pytest.raises(StudyConfigError, match=r"'batch_size' must be in \[1, 65536\]"):
        changed.for_model(model)


def test_causal_tracing_window_is_checked_against_the_model_before_any_work(monkeypatch):
    import lens
    from lens.studies import causal_tracing

    ct_run = importlib.import_module("lens.studies.causal_tracing.run")

    model = lens.load_model(lens.tiny_config("llama"))
    n = int(model.cfg.n_layers)

    def no_work(*args, **kwargs):
        raise AssertionError("the study started work before checking its window")

    monkeypatch.setattr(ct_run, "facts_by_language", no_work)
    with pytest.raises(StudyConfigError, match=rf"'window' is {n + 1}, .* only {n} layers"):
        causal_tracing.run(model, causal_tracing.Config(window=n + 1))
    assert causal_tracing.Config(window=n).window == n  # the full depth is allowed
