"""HeadAblation and ActivationPatch on both families (Llama with grouped-query attention)."""

from __future__ import annotations

import json

import pytest
import torch

import lens
from interventions import ActivationPatch, HeadAblation, from_dict
from interventions import bridge as hb

TOKENS = torch.tensor([[5, 9, 2, 7, 11], [3, 3, 8, 1, 4]])


def capture(model, name, tokens=TOKENS):
    probe = lens.Probe(name)
    with lens.apply(model, probes=[probe]):
        logits = model(tokens)
    return probe.value, logits


def test_head_outputs_sum_to_attention_output(native_model):
    z, _ = capture(native_model, hb.z_hook(1))
    out, _ = capture(native_model, "blocks.1.hook_attn_out")
    manual = torch.einsum("bphd,hdm->bpm", z, hb.w_o(native_model, 1))
    bias = hb.b_o(native_model, 1)
    manual = manual + (0 if bias is None else bias)
    torch.testing.assert_close(manual, out, atol=1e-5, rtol=0)


def test_ablating_every_head_equals_zeroing_attention_output(native_model):
    bias = hb.b_o(native_model, 1)

    def only_bias(act, hook):  # what is left of attention when every head says nothing
        return torch.zeros_like(act) + (0 if bias is None else bias)

    expected = native_model.run_with_hooks(
        TOKENS, fwd_hooks=[("blocks.1.hook_attn_out", only_bias)]
    )
    with lens.apply(native_model, interventions=[HeadAblation({1: [0, 1, 2, 3]})]):
        got = native_model(TOKENS)
    clean = native_model(TOKENS)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert (got - clean).abs().max() > 1e-3


def test_mean_ablation_writes_the_given_means_on_listed_heads_only(native_model):
    z, _ = capture(native_model, hb.z_hook(0))
    means = {0: z.mean(dim=(0, 1))}
    ablation = HeadAblation({0: [2]}, mode="mean", means=means, positions=[1, 3])
    probe = lens.Probe(hb.z_hook(0))
    with lens.apply(native_model, interventions=[ablation], probes=[probe]):
        native_model(TOKENS)
    expected = z.clone()
    expected[:, [1, 3], 2] = means[0][2]
    # the probe runs after the ablation on the same hook point
    torch.testing.assert_close(probe.value, expected, atol=0, rtol=0)


def test_activation_patch_of_whole_stream_gives_the_source_run(native_model):
    source = TOKENS.flip(0)
    resid, source_logits = capture(native_model, "blocks.0.hook_resid_pre", source)
    with lens.apply(native_model, interventions=[ActivationPatch("resid_pre", 0, resid)]):
        got = native_model(TOKENS)
    torch.testing.assert_close(got, source_logits, atol=1e-5, rtol=0)
    assert (got - native_model(TOKENS)).abs().max() > 1e-3


def test_activation_patch_one_head_at_one_position(native_model):
    z_src, _ = capture(native_model, hb.z_hook(1), TOKENS.flip(0))
    z, _ = capture(native_model, hb.z_hook(1))
    patch = ActivationPatch("z", 1, z_src, positions=[3], heads=[1])
    probe = lens.Probe(hb.z_hook(1))
    with lens.apply(native_model, interventions=[patch], probes=[probe]):
        native_model(TOKENS)
    expected = z.clone()
    expected[:, 3, 1] = z_src[:, 3, 1]
    torch.testing.assert_close(probe.value, expected, atol=0, rtol=0)


def test_json_round_trip():
    items = [
        HeadAblation({2: [0, 1]}, mode="mean", means={2: torch.randn(4, 16)}, positions="last"),
        ActivationPatch("z", 1, torch.randn(2, 5, 4, 16), positions=[0, 2], heads=[3]),
        ActivationPatch("mlp_out", 0, torch.randn(5, 64)),
    ]
    for item in items:
        spec = json.loads(json.dumps(item.to_dict()))
        assert from_dict(spec).to_dict() == item.to_dict()


def test_folder_round_trip_keeps_tensors_in_safetensors(tmp_path):
    items = [
        HeadAblation({2: [0, 1]}, mode="mean", means={2: torch.randn(4, 16)}, positions="last"),
        HeadAblation({1: [3]}),
        ActivationPatch("z", 1, torch.randn(2, 5, 4, 16), positions=[0, 2], heads=[3]),
        ActivationPatch("mlp_out", 0, torch.randn(5, 64, dtype=torch.float64)),
    ]
    for i, item in enumerate(items):
        folder = item.save(tmp_path / str(i))
        (meta,) = folder.glob("*.json")
        assert "data" not in meta.read_text()  # no tensor inline in the JSON
        again = type(item).load(folder)
        assert again.to_dict() == item.to_dict()
    with pytest.raises(FileNotFoundError, match="not a saved ActivationPatch"):
        ActivationPatch.load(tmp_path / "0")


@pytest.mark.parametrize(
    "make",
    [
        lambda: HeadAblation({1: [4]}),
        lambda: HeadAblation({7: [0]}),
        lambda: ActivationPatch("z", 0, torch.zeros(5, 4, 16), heads=[9]),
        lambda: ActivationPatch("resid_pre", 0, torch.zeros(5, 63)),
    ],
)
def test_out_of_range_raises_before_installing(native_model, make):
    before = lens.count_hooks(native_model)
    clean = native_model(TOKENS)
    with pytest.raises(ValueError, match="range|needs"):
        lens.apply(native_model, interventions=[HeadAblation({0: [0]}), make()])
    assert lens.count_hooks(native_model) == before
    assert torch.equal(native_model(TOKENS), clean)


def test_bad_construction():
    with pytest.raises(ValueError, match="site must be one of"):
        ActivationPatch("resid_middle", 0, torch.zeros(3, 64))
    with pytest.raises(ValueError, match="write 'z'"):
        ActivationPatch("head", 0, torch.zeros(3, 4, 16))
    with pytest.raises(ValueError, match="NaN"):
        ActivationPatch("resid_pre", 0, torch.full((3, 64), float("nan")))
    with pytest.raises(ValueError, match="means"):
        HeadAblation({0: [1]}, mode="mean")
