"""Slow tier: a tuned lens for SmolLM2-135M-Instruct trained on the training split of the
project's own text samples beats the logit lens on the held-out split at every layer but the
last (KL to the model's final distribution, bits). Prints the table."""

from __future__ import annotations

import time

import pytest

import lens
from lens.tuned_lens.corpora import samples_corpus

pytestmark = pytest.mark.slow


def test_tuned_lens_beats_logit_lens_on_heldout_samples(smol):
    start = time.perf_counter()
    tl = lens.tuned_lens.train(
        smol, samples_corpus("train"), steps=24, tokens_per_step=256, progress=False
    )
    res = lens.tuned_lens.evaluate(smol, samples_corpus("heldout"), translator=tl)
    print(
        f"\ntrained {tl.record['steps']} steps, {tl.record['tokens']} tokens, "
        f"{tl.record['seconds']:.0f} s (total {time.perf_counter() - start:.0f} s)"
    )
    print(res.table())
    last = len(res.layers) - 1
    for i in range(last):
        assert res.tuned_kl_bits[i] < res.logit_kl_bits[i], res.layers[i]
    assert res.logit_kl_bits[last] < 1e-3 and res.tuned_kl_bits[last] < 1e-2
