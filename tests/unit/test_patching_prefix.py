"""Prefix reuse in exact activation patching: equal to patching without it within TOL (one
unpadded pair, where copies also join late, and left-padded pairs), and actually used."""

from __future__ import annotations

from pathlib import Path

import pytest

import lens
import lens.patching.exact as exact
from lens.patching import activation_patching
from tests.conftest import save_random_hf

# float32: the reused prefix's keys/values enter attention in another summation order; the
# largest difference seen is 1.1e-5 on metrics of magnitude 1.5 (random GPT-2, AMD EPYC CPU;
# below 1e-5 on other CPUs), so the tolerance is 3e-5 absolute, ~2e-5 of the metrics' scale
TOL = 3e-5
SITES = ["resid_pre", "resid_post", "attn_out", "mlp_out", "z"]


def pairs_of(model, texts):
    clean, corrupt = [], []
    for i, text in enumerate(texts):
        ids = lens.tokens.batch(model, [text]).tokens[0].tolist()
        bad = list(ids)
        bad[2 + i] = 300 + i
        clean.append(ids)
        corrupt.append(bad)
    return clean, corrupt


def compare(model, clean, corrupt, monkeypatch, sites=SITES):
    calls = []
    real = exact.forward_from
    monkeypatch.setattr(exact, "forward_from", lambda *a: calls.append(a[-1]) or real(*a))
    kw = dict(answer=300, wrong=301, sites=sites, batch_size=24)
    reused = activation_patching(model, clean, corrupt, **kw)
    assert calls and max(calls) > 0  # forwards started after a cached prefix
    plain = activation_patching(model, clean, corrupt, reuse_prefix=False, **kw)
    for site in sites:
        a, b = reused.values(site), plain.values(site)
        assert (a - b).abs().max() < TOL, site
        assert b.abs().max() > 0.05  # not a trivial sweep
    return len(calls)


def test_prefix_reuse_equals_plain_patching_on_stories(stories_model, monkeypatch):
    clean, corrupt = pairs_of(stories_model, ["Lily went to the park with her dog"])
    compare(stories_model, clean, corrupt, monkeypatch)  # one pair: copies join late too
    sites = ["resid_pre", "attn_out"]
    clean, corrupt = pairs_of(stories_model, ["Lily went to the park", "The big dog ran"])
    compare(stories_model, clean, corrupt, monkeypatch, sites)  # left-padded pairs


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_prefix_reuse_on_random_models(family, tmp_path, monkeypatch):
    model = lens.load_model(save_random_hf(family, Path(tmp_path)))
    clean = [[1, 40, 41, 42, 43, 44, 45], [1, 50, 51, 52, 53]]
    corrupt = [[1, 40, 300, 42, 43, 44, 45], [1, 50, 51, 301, 53]]
    compare(model, clean, corrupt, monkeypatch)


def test_no_reuse_where_it_would_not_be_exact(monkeypatch):
    model = lens.load_model(lens.tiny_config("llama"))  # a native bridge: no KV cache
    calls = []
    monkeypatch.setattr(exact, "forward_from", lambda *a: calls.append(1))
    res = activation_patching(model, [[1, 2, 3, 4]], [[1, 5, 3, 4]], answer=7, wrong=8)
    assert not calls and res.values("resid_pre").shape == (3, 4)
