"""Regressions for the input classes the fuzzer found breaking the property (each was a bug,
now refused by the input gate, lens/inputs.py, or at construction): token ids outside the
vocabulary, prompts past the context, identical pairs, answer == wrong, an activation addition
that overflows float32, 10^5-character prompts. The generators keep them out of the property
tests; here each must give one clear error.

The 10^5-character prompts run in a child process with its address space capped, so that a
forward over 25,000 tokens fails there instead of exhausting this machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

import lens
from tests.fuzz.property import assert_finite, check, logit_lens_finite, patching_finite

VOCAB, CTX = 257, 128


@pytest.mark.parametrize("bad", [VOCAB, 10**6, -1], ids=["vocab", "huge", "negative"])
def test_prompt_ids_outside_the_vocabulary(tiny, bad):
    check(
        "known: prompt ids", tiny, lambda: lens.logit_lens(tiny, [[1, bad, 2]]), logit_lens_finite
    )


def test_prompt_over_the_context_tiny(tiny):
    check(
        "known: over context",
        tiny,
        lambda: lens.logit_lens(tiny, [[1] * (CTX + 1)]),
        logit_lens_finite,
    )


def test_dla_over_the_context_organism(organism):
    def refused(result):
        raise AssertionError("over-context prompt was accepted")

    check(
        "known: over context",
        organism,
        lambda: lens.attribution.direct_logit_attribution(organism, ["the " * 200], answer=5),
        refused,
    )


@pytest.mark.parametrize("method", ["exact", "attribution"])
def test_identical_pair(tiny, method):
    fn = (
        lens.patching.activation_patching
        if method == "exact"
        else lens.patching.attribution_patching
    )
    kw = {"progress": False} if method == "exact" else {}
    check(
        "known: identical pair",
        tiny,
        lambda: fn(tiny, [[1, 2, 3]], [[1, 2, 3]], answer=5, wrong=6, sites=["resid_pre"], **kw),
        patching_finite,
    )


def test_answer_equals_wrong(tiny):
    check(
        "known: answer == wrong",
        tiny,
        lambda: lens.patching.activation_patching(
            tiny, [[1, 2, 3]], [[1, 4, 3]], answer=5, wrong=5, sites=["resid_pre"], progress=False
        ),
        patching_finite,
    )


@pytest.mark.parametrize(("scale", "coeff"), [(1e38, 4.0), (1e20, 1e30)])
def test_activation_addition_overflow(tiny, scale, coeff):
    from interventions import ActivationAddition

    def run():
        iv = ActivationAddition(torch.ones(64) * scale, 0, coeff=coeff)
        with lens.apply(tiny, iv), torch.no_grad():
            return tiny(torch.tensor([[3, 4, 5]]))

    check("known: addition overflow", tiny, run, assert_finite)


CHILD = textwrap.dedent("""
    import json, resource, sys, warnings
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
    warnings.simplefilter("ignore")
    import torch; torch.set_num_threads(1)
    import lens
    model = lens.load_model("organism")
    long = "the " * 25_000  # 10^5 characters, 25,000 tokens (context 64)
    calls = {
        "logit_lens": lambda: lens.logit_lens(model, [long]),
        "tokens.batch": lambda: lens.tokens.batch(model, [long]),
    }
    out = {}
    for name, call in calls.items():
        try:
            call()
            out[name] = "accepted"
        except (ValueError, TypeError, KeyError) as exc:
            out[name] = "refused: " + str(exc).splitlines()[0]
        except BaseException as exc:
            out[name] = f"crashed: {type(exc).__name__}: {str(exc)[:120]}"
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def long_prompt_outcomes():
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("api", ["logit_lens", "tokens.batch"])
def test_prompt_of_100k_characters(long_prompt_outcomes, api):
    outcome = long_prompt_outcomes[api]
    assert outcome.startswith("refused: ") and "64" in outcome, outcome


def test_the_neighbours_of_the_refused_classes_still_work(tiny):
    """Next to each bug class, its sound neighbour works: ids at the vocabulary's edge, a
    prompt of exactly n_ctx tokens, a pair differing in one token."""
    res = lens.logit_lens(tiny, [[0, VOCAB - 1]])
    logit_lens_finite(res)
    logit_lens_finite(lens.logit_lens(tiny, [[1] * CTX]))
    pat = lens.patching.activation_patching(
        tiny, [[1, 2, 3]], [[1, 4, 3]], answer=5, wrong=6, sites=["resid_pre"], progress=False
    )
    patching_finite(pat)
    with torch.no_grad():
        assert_finite(tiny(torch.tensor([[0, VOCAB - 1]])))
