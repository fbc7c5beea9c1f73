"""lens.patching.head_means: per-head means of hook_z from lens.collect, against a manual mean."""

from __future__ import annotations

import torch

import lens
from interventions import HeadAblation
from lens.patching import head_means

PROMPTS = [[5, 9, 2, 7, 11], [3, 8, 1], [6, 6, 4, 2]]  # unequal lengths: padding must not count


def manual_means(model, layers):
    """Each prompt alone (no padding), every token's hook_z, mean in float64."""
    rows = {layer: [] for layer in layers}
    for prompt in PROMPTS:
        probes = {layer: lens.Probe(f"blocks.{layer}.attn.hook_z") for layer in layers}
        with torch.no_grad(), lens.apply(model, probes=list(probes.values())):
            model(torch.tensor([prompt]))
        for layer, p in probes.items():
            rows[layer].append(p.value[0].double())  # [pos, heads, d_head]
    return {layer: torch.cat(v).mean(0) for layer, v in rows.items()}


def test_head_means_equal_a_manual_mean_over_real_tokens(native_model):
    layers = [0, 2]
    got = head_means(native_model, PROMPTS, layers=layers, batch_size=2)
    want = manual_means(native_model, layers)
    assert set(got) == set(layers)
    for layer in layers:
        assert got[layer].shape == want[layer].shape == (4, 16)
        torch.testing.assert_close(got[layer], want[layer], atol=1e-6, rtol=0)
        assert got[layer].abs().max() > 1e-3  # not trivially zero
    # heads differ from each other (the reshape kept heads apart)
    assert (got[0][0] - got[0][1]).abs().max() > 1e-3


def test_head_means_feed_mean_ablation(native_model):
    means = head_means(native_model, PROMPTS, layers=[1])
    tokens = torch.tensor([PROMPTS[0]])
    probe = lens.Probe("blocks.1.attn.hook_z")
    with lens.apply(
        native_model,
        HeadAblation({1: [3]}, mode="mean", means=means),
        probes=[probe],
    ):
        native_model(tokens)
    torch.testing.assert_close(
        probe.value[0, :, 3], means[1][3].float().expand(len(PROMPTS[0]), -1), atol=0, rtol=0
    )
