"""The input gate (issue 24's `lens patch` cases): long prompts refused before any forward,
unknown answers, empty and identical prompts, answer == wrong and equal metrics refused with
the reason (never NaN cells); memory planning; results that record their inputs."""

from __future__ import annotations

import json

import pytest
import torch

import lens
from lens import inputs
from lens.cli import main
from lens.inputs import InputError
from lens.patching import activation_patching, attribution_patching
from lens.tokens import TokenError

CLEAN, CORRUPT = "the job of alice is", "the job of bob is"


@pytest.fixture(scope="module")
def organism():
    model = lens.load_model("organism")
    lens.models.small_model_threads(model)
    return model


@pytest.fixture
def no_forward(organism, monkeypatch):
    """Fails the test if the model runs a forward."""

    def forward(*args, **kwargs):
        raise AssertionError("a forward ran")

    monkeypatch.setattr(organism, "forward", forward)
    return organism


@pytest.mark.parametrize("patch", [activation_patching, attribution_patching])
def test_long_prompts_refused_before_any_forward(no_forward, patch):
    long_clean, long_corrupt = "alice is " * 50_000, "bob is " * 50_000  # 100k+ characters
    with pytest.raises(InputError, match=r"at most 64 \(its context, cfg.n_ctx\)"):
        patch(no_forward, [long_clean], [long_corrupt], answer="lawyer")
    just_over = " ".join(["alice"] * 64)  # 64 words + BOS = 65 tokens
    with pytest.raises(InputError, match="65 tokens"):
        patch(no_forward, [just_over], [just_over.replace("alice", "bob")], answer="lawyer")


def test_cli_refuses_long_prompts_with_exit_2(tmp_path, capsys):
    args = ["--clean", "alice is " * 20_000, "--corrupt", "bob is " * 20_000]
    code = main(["patch", "organism", *args, "--answer", "lawyer", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "n_ctx" in capsys.readouterr().err
    assert not (tmp_path / "o" / "result.json").exists()


@pytest.mark.parametrize(
    "clean, corrupt, kw, error, match",
    [
        ([""], [""], {"answer": "lawyer"}, InputError, "empty"),
        (["  "], ["  "], {"answer": "lawyer"}, InputError, "empty"),
        ([], [], {"answer": "lawyer"}, InputError, "no prompts"),
        ([CLEAN], [CLEAN], {"answer": "lawyer"}, InputError, "same tokens"),
        ([CLEAN], [CORRUPT], {"answer": "Paris"}, TokenError, "does not know"),
        ([CLEAN], [CORRUPT], {"answer": "lawyer", "wrong": " lawyer"}, InputError, "same token"),
        ([CLEAN], [CORRUPT], {"answer": "alice lawyer"}, TokenError, "2 tokens"),
    ],
)
def test_degenerate_patching_input_is_refused(no_forward, clean, corrupt, kw, error, match):
    for patch in (activation_patching, attribution_patching):
        with pytest.raises(error, match=match):
            patch(no_forward, clean, corrupt, **kw)


@pytest.mark.parametrize(
    "clean, corrupt, match",
    [
        (3, [[1, 2]], "clean must be a string"),
        ([[1, 2]], None, "corrupt must be a string"),
        ([[1, 2]], [["a"]], "corrupt must be all strings"),
        ([], [[1, 2]], "clean is empty"),
    ],
)
def test_patching_names_the_bad_argument(no_forward, clean, corrupt, match):
    for patch in (activation_patching, attribution_patching):
        with pytest.raises((TypeError, ValueError), match=match):
            patch(no_forward, clean, corrupt, answer="lawyer")


def test_equal_metrics_are_refused_not_nan(organism):
    def constant(logits, batch):  # a metric the prompts cannot move: no finite effect
        return logits[:, 0, 0] * 0 + 1.0

    with pytest.raises(InputError, match="same on the clean and the corrupted"):
        activation_patching(organism, [CLEAN], [CORRUPT], metric=constant, progress=False)
    with pytest.raises(InputError, match="same on the clean and the corrupted"):
        attribution_patching(organism, [CLEAN], [CORRUPT], metric=constant)


def test_memory_bound_chunks_without_changing_numbers(organism, monkeypatch):
    kw = dict(answer="lawyer", wrong="doctor", sites=["resid_pre"], progress=False)
    free = activation_patching(organism, [CLEAN], [CORRUPT], **kw)
    one_copy = inputs.forward_bytes(organism, 6, 1)
    seen = []
    original = inputs.rows_per_forward

    def spy(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr("lens.patching.exact.rows_per_forward", spy)
    stored = organism.cfg.n_layers * one_copy // 4
    monkeypatch.setattr(inputs, "MEMORY_BOUND_BYTES", stored + 3 * one_copy)
    bounded = activation_patching(organism, [CLEAN], [CORRUPT], **kw)
    assert seen and max(seen) == 3  # 3 copies per forward instead of 64
    torch.testing.assert_close(bounded.raw["resid_pre"], free.raw["resid_pre"], atol=1e-5, rtol=0)
    monkeypatch.setattr(inputs, "MEMORY_BOUND_BYTES", one_copy // 2)
    with pytest.raises(InputError, match="MEMORY_BOUND_BYTES"):
        activation_patching(organism, [CLEAN], [CORRUPT], **kw)


def test_result_records_its_inputs(organism, tmp_path):
    res = activation_patching(
        organism, [CLEAN], [CORRUPT], answer="lawyer", wrong="id:5", sites=["resid_pre"],
        positions="last", progress=False,
    )  # fmt: skip
    res.save(tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())
    meta = saved["meta"]
    tok = organism.tokenizer
    assert meta["lens_version"] == lens.__version__
    assert meta["model_fingerprint"] == lens.stats.model_fingerprint(organism)
    assert meta["clean_prompts"] == [CLEAN] and meta["corrupt_prompts"] == [CORRUPT]
    assert meta["answer_ids"] == [tok.convert_tokens_to_ids("lawyer")]
    assert meta["answer_tokens"] == ["lawyer"] and meta["wrong_ids"] == [5]
    assert meta["metric"].startswith("logit[answer] - logit[wrong]")
    assert meta["sites"] == ["resid_pre"] and meta["positions"] == "last"
    b = lens.tokens.batch(organism, [CLEAN])
    with torch.no_grad():
        last = organism(b.tokens, attention_mask=b.attention_mask)[0, -1]
    expected = float(last[meta["answer_ids"][0]] - last[5])
    assert abs(saved["clean_metric"][0] - expected) < 1e-4
    assert lens.patching.PatchingResult.load(tmp_path).meta == meta


def test_the_no_forward_fixture_catches_a_forward(no_forward):
    with pytest.raises(AssertionError, match="a forward ran"):
        lens.logit_lens(no_forward, [CLEAN])
