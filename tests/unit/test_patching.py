"""activation_patching equals transformer_lens.patching on the same bridge (both families,
both directions), plus its own invariants and error handling."""

from __future__ import annotations

import pytest
import torch
import transformer_lens.patching as tlp

import lens
from interventions import ActivationPatch
from lens.patching import PatchingResult, activation_patching

CLEAN = torch.tensor([[5, 9, 2, 7, 11, 4], [3, 3, 8, 1, 4, 9]])
CORRUPT = torch.tensor([[5, 9, 20, 7, 11, 4], [3, 30, 8, 1, 4, 9]])
ANSWER, WRONG = [17, 23], [40, 41]
TL_FUNCTIONS = {
    "resid_pre": tlp.get_act_patch_resid_pre,
    "attn_out": tlp.get_act_patch_attn_out,
    "mlp_out": tlp.get_act_patch_mlp_out,
    "z": tlp.get_act_patch_attn_head_out_by_pos,
}


def tl_reference(model, clean, corrupt, answer, wrong, direction):
    """TransformerLens's own patching, with the same normalised logit difference."""
    a, w = torch.tensor(answer), torch.tensor(wrong)
    rows = torch.arange(len(a))

    def logit_diff(logits):
        last = logits[:, -1]
        return (last[rows, a] - last[rows, w]).mean()

    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean)
        corrupt_logits, corrupt_cache = model.run_with_cache(corrupt)
    base, top = logit_diff(corrupt_logits), logit_diff(clean_logits)

    def metric(logits):
        return (logit_diff(logits) - base) / (top - base)

    target, cache = (corrupt, clean_cache) if direction == "denoise" else (clean, corrupt_cache)
    return {site: fn(model, target, cache, metric) for site, fn in TL_FUNCTIONS.items()}


@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_equals_transformer_lens(native_model, direction):
    ours = activation_patching(
        native_model, CLEAN, CORRUPT, answer=ANSWER, wrong=WRONG, direction=direction,
        progress=False,
    )  # fmt: skip
    ref = tl_reference(native_model, CLEAN, CORRUPT, ANSWER, WRONG, direction)
    for site, expected in ref.items():
        got = ours.values(site)
        assert got.shape == expected.shape, site
        torch.testing.assert_close(got.float(), expected.float(), atol=1e-5, rtol=0)
        assert expected.abs().max() > 0.05, f"{site}: the reference shows no effect at all"


def test_whole_layer0_patch_is_one_and_unchanged_cells_are_zero(native_model):
    res = activation_patching(
        native_model, CLEAN, CORRUPT, answer=ANSWER, wrong=WRONG, progress=False
    )
    probe = lens.Probe("blocks.0.hook_resid_pre")
    with lens.apply(native_model, probes=[probe]):
        native_model(CLEAN)
    with (
        torch.no_grad(),
        lens.apply(native_model, ActivationPatch("resid_pre", 0, probe.value)),
    ):
        logits = native_model(CORRUPT)
    rows = torch.arange(2)
    last = logits[:, -1]
    patched = (last[rows, ANSWER] - last[rows, WRONG]).double().mean()
    clean, corrupt = res.clean_metric.mean(), res.corrupt_metric.mean()
    assert abs(float((patched - corrupt) / (clean - corrupt)) - 1.0) < 1e-5
    # position 0 holds the same token in both prompts: patching it changes nothing
    for site in res.sites:
        assert res.values(site)[:, 0].abs().max() < 1e-6
    assert res.values("resid_pre").abs().max() > 0.05


def test_cells_batched_equal_one_cell_per_forward(native_model):
    kw = dict(answer=ANSWER, wrong=WRONG, progress=False, sites=["resid_pre", "z"])
    one = activation_patching(native_model, CLEAN, CORRUPT, batch_size=2, **kw)
    many = activation_patching(native_model, CLEAN, CORRUPT, batch_size=1000, **kw)
    for site in one.sites:
        torch.testing.assert_close(one.raw[site], many.raw[site], atol=1e-5, rtol=0)


def test_left_padded_pairs_equal_one_pair_at_a_time(native_model):
    clean = [[5, 9, 2, 7, 11, 4], [8, 1, 4, 9]]
    corrupt = [[5, 9, 20, 7, 11, 4], [8, 30, 4, 9]]
    kw = dict(answer=ANSWER, wrong=WRONG, progress=False)
    both = activation_patching(native_model, clean, corrupt, **kw)
    width = 6
    for i in range(2):
        alone = activation_patching(
            native_model, [clean[i]], [corrupt[i]], answer=ANSWER[i], wrong=WRONG[i],
            progress=False,
        )  # fmt: skip
        shift = width - len(clean[i])
        for site in both.sites:
            torch.testing.assert_close(
                both.raw[site][i, :, shift:], alone.raw[site][0], atol=1e-4, rtol=0
            )


def test_last_position_and_save_load(native_model, tmp_path):
    res = activation_patching(
        native_model, CLEAN, CORRUPT, answer=ANSWER, wrong=WRONG, positions="last",
        sites=["mlp_out", "z"], progress=False,
    )  # fmt: skip
    full = activation_patching(
        native_model, CLEAN, CORRUPT, answer=ANSWER, wrong=WRONG, positions=[-1],
        sites=["mlp_out", "z"], progress=False,
    )  # fmt: skip
    torch.testing.assert_close(res.raw["z"], full.raw["z"], atol=1e-6, rtol=0)
    back = PatchingResult.load(res.save(tmp_path / "res"))
    assert back.position_labels == res.position_labels and back.layers == res.layers
    torch.testing.assert_close(back.values("z"), res.values("z"), atol=0, rtol=0)
    res.plot("z", tmp_path / "head.png")
    assert (tmp_path / "head.png").stat().st_size > 1000


def bad_metric(logits, batch):
    return logits[:, -1, :2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(corrupt=[[5, 9, 20, 7, 11], [3, 30, 8, 1, 4, 9]]), "7 tokens|5 tokens|6 tokens"),
        (dict(sites=["resid_middle"]), "patching site must be one of"),
        (dict(layers=[3]), "layers 0..2"),
        (dict(positions=[6]), "out of range"),
        (dict(metric=bad_metric), "one value per row"),
        (dict(answer=999), "out of range"),
    ],
)
def test_bad_input_leaves_no_hook(native_model, kwargs, match):
    before = lens.count_hooks(native_model)
    clean_logits = native_model(CLEAN)
    args = dict(clean=CLEAN, corrupt=CORRUPT, answer=ANSWER, wrong=WRONG, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        activation_patching(native_model, **args)
    assert lens.count_hooks(native_model) == before
    assert torch.equal(native_model(CLEAN), clean_logits)


def test_custom_metric_equals_the_default(native_model):
    a, w = torch.tensor(ANSWER), torch.tensor(WRONG)

    def logit_diff(logits, batch):  # full logits, copy-major rows
        reps = logits.shape[0] // 2
        rows = torch.arange(logits.shape[0])
        last = logits[rows, batch.last_positions]
        return last[rows, a.repeat(reps)] - last[rows, w.repeat(reps)]

    kw = dict(progress=False, sites=["resid_pre", "z"])
    default = activation_patching(native_model, CLEAN, CORRUPT, answer=ANSWER, wrong=WRONG, **kw)
    custom = activation_patching(native_model, CLEAN, CORRUPT, metric=logit_diff, **kw)
    for site in default.sites:
        torch.testing.assert_close(default.raw[site], custom.raw[site], atol=1e-5, rtol=0)


def test_one_pair_equals_transformer_lens(native_model):
    """One unpadded pair takes the path that runs layers before the patched ones once."""
    ours = activation_patching(
        native_model, CLEAN[:1], CORRUPT[:1], answer=ANSWER[:1], wrong=WRONG[:1], progress=False,
        batch_size=7,
    )  # fmt: skip
    ref = tl_reference(native_model, CLEAN[:1], CORRUPT[:1], ANSWER[:1], WRONG[:1], "denoise")
    for site, expected in ref.items():
        torch.testing.assert_close(ours.values(site).float(), expected, atol=1e-5, rtol=0)
        assert expected.abs().max() > 0.05
