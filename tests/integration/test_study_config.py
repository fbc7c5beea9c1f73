"""Study configs check every value against its field's declared type, whether built directly,
from a dict or from a JSON file, and name the key, the expected type and (for files) the file.
No model is needed."""

from __future__ import annotations

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
