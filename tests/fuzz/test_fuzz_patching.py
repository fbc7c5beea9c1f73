"""Fuzzing lens.patching (activation and attribution patching) and
lens.attribution.direct_logit_attribution: prompt pairs, answers, sites, positions, layers.

Generated pairs differ in at least one token and use distinct answer/wrong ids: identical
pairs and ``answer == wrong`` (which gave NaN cells before the input gate refused them) are
tested once each in test_fuzz_regressions.py instead of on every generated case here.
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

import lens
from tests.fuzz.property import assert_finite, check, patching_finite
from tests.fuzz.strategies import fuzz, layer_arg, mostly

VOCAB, LAYERS = 257, 3

token = st.integers(0, VOCAB - 1)
answer_arg = mostly(
    token,
    st.one_of(
        st.integers(-3, -1),
        st.integers(VOCAB, 2**40),
        st.just(f"id:{VOCAB + 5}"),
        st.just("id:-1"),
        st.just("id:x"),
        st.lists(token, min_size=2, max_size=3),  # one per prompt, or the wrong count
    ),
)
sites = mostly(
    st.lists(st.sampled_from(["resid_pre", "attn_out", "mlp_out", "head"]), min_size=1, max_size=4),
    st.one_of(st.just([]), st.just(["resid_mid"]), st.just("mlp_out")),
)
positions = mostly(st.sampled_from(["all", "last"]), st.one_of(st.text(max_size=4)))


@st.composite
def pairs(draw, max_len: int = 6):
    """(clean, corrupt): 1-2 rows of equal length, differing somewhere in each row; or a
    pair of unequal lengths / counts now and then."""
    rows = draw(st.integers(1, 2))
    length = draw(st.integers(1, max_len))
    clean = [draw(st.lists(token, min_size=length, max_size=length)) for _ in range(rows)]
    corrupt = []
    for row in clean:
        other = list(row)
        at = draw(st.integers(0, length - 1))
        other[at] = (other[at] + draw(st.integers(1, VOCAB - 1))) % VOCAB
        corrupt.append(other)
    shape = draw(st.sampled_from(["same"] * 6 + ["longer", "fewer"]))
    if shape == "longer":
        corrupt[0] = corrupt[0] + [1]
    elif shape == "fewer" and rows == 2:
        corrupt = corrupt[:1]
    return clean, corrupt


def distinct(answer, wrong) -> bool:
    return not (isinstance(answer, int) and isinstance(wrong, int) and answer == wrong)


@fuzz(120)
@given(
    pair=pairs(),
    answer=answer_arg,
    wrong=answer_arg,
    sites=sites,
    positions=positions,
    layers=mostly(st.just("all"), layer_arg(LAYERS)),
    direction=mostly(st.sampled_from(["denoise", "noise"]), st.text(max_size=3)),
    batch_size=mostly(st.integers(1, 64), st.one_of(st.integers(-1, 0))),
)
def test_activation_patching(
    tiny, pair, answer, wrong, sites, positions, layers, direction, batch_size
):
    assume(distinct(answer, wrong))
    check(
        "activation_patching",
        tiny,
        lambda: lens.patching.activation_patching(
            tiny,
            pair[0],
            pair[1],
            answer=answer,
            wrong=wrong,
            sites=sites,
            positions=positions,
            layers=layers,
            direction=direction,
            batch_size=batch_size,
            progress=False,
        ),
        patching_finite,
    )


@fuzz(150)
@given(
    pair=pairs(),
    answer=answer_arg,
    wrong=answer_arg,
    sites=sites,
    positions=positions,
    layers=mostly(st.just("all"), layer_arg(LAYERS)),
)
def test_attribution_patching(tiny, pair, answer, wrong, sites, positions, layers):
    assume(distinct(answer, wrong))
    check(
        "attribution_patching",
        tiny,
        lambda: lens.patching.attribution_patching(
            tiny,
            pair[0],
            pair[1],
            answer=answer,
            wrong=wrong,
            sites=sites,
            positions=positions,
            layers=layers,
        ),
        patching_finite,
    )


@fuzz(300)
@given(
    prompts=st.lists(st.lists(token, min_size=1, max_size=8), min_size=1, max_size=3),
    answer=answer_arg,
    wrong=st.one_of(st.none(), answer_arg),
)
def test_direct_logit_attribution(tiny, prompts, answer, wrong):
    def finite(dla):
        assert_finite(dla)
        assert_finite(dla.parts_sum())

    check(
        "direct_logit_attribution",
        tiny,
        lambda: lens.attribution.direct_logit_attribution(
            tiny, prompts, answer=answer, wrong=wrong
        ),
        finite,
    )
