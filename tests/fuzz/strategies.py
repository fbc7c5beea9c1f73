"""Hypothesis strategies for hostile inputs, and the fixed settings every fuzz test uses."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# reproducible (no random seed, no example database) and bounded: each test states its count
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

NASTY_TEXTS = [
    "",
    " ",
    "\t\n  \r\n",
    "\x00\x01\x02\x1b[31m\x7f",
    "\u200b\u200e\u200f\ufeff",  # zero-width space, LTR/RTL marks, BOM
    "שלום עולם مرحبا بالعالم",  # right-to-left scripts
    "e\u0301\u0301\u0301 a\u0308\u0323 Z\u0335\u0334\u0338",  # stacked combining marks
    "<script>alert('x')</script>",
    "{{7*7}} ${jndi:ldap://x} %s %n ../../etc/passwd",
    "zxqvbn frobnicate quuxly",  # words no vocabulary knows
    "🙂🚀 \U0001f9ea \ud7ff",
    "<pad><pad><pad>",
    "<unk> <s> </s> <bos> <eos>",
    "The capital of France is",
]

# any Unicode text (surrogates excluded: they cannot be encoded)
any_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]),
    max_size=40,
)
text_prompt = st.one_of(st.sampled_from(NASTY_TEXTS), any_text)

ints = st.one_of(
    st.integers(-3, 3),
    st.integers(-(2**70), 2**70),
    st.sampled_from([-1, 0, 1, 2**31, 2**63, -(2**63)]),
)
wrong_types = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def token_prompt(vocab: int, max_len: int) -> st.SearchStrategy[list[int]]:
    """Token-id prompts of valid ids (1..max_len tokens)."""
    return st.lists(st.integers(0, vocab - 1), min_size=1, max_size=max_len)


def layer_arg(n_layers: int) -> st.SearchStrategy:
    """``layers`` arguments: "all", valid and invalid indices, duplicates, wrong types."""
    one = st.one_of(st.integers(-n_layers - 2, n_layers + 2), st.sampled_from([10**9, -(10**9)]))
    return st.one_of(
        st.just("all"),
        st.lists(st.integers(0, n_layers - 1), min_size=1, max_size=n_layers, unique=True),
        st.lists(one, max_size=4),
        one,
    )


def position_arg(max_len: int) -> st.SearchStrategy:
    """``positions`` arguments: "last"/"all", in- and out-of-range indices, duplicates, junk."""
    one = st.integers(-max_len - 3, max_len + 3)
    return st.one_of(
        st.sampled_from(["last", "all", "first", ""]),
        st.lists(one, max_size=4),
        one,
    )


def fuzz(max_examples: int) -> settings:
    """:data:`FUZZ` with this many generated examples."""
    return settings(FUZZ, max_examples=max_examples)


def mostly(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """Seven draws in eight from ``valid``: with several arguments per call, most cases still
    get past the argument checks and run."""
    return st.sampled_from(range(8)).flatmap(lambda i: invalid if i == 0 else valid)


extreme_floats = st.one_of(
    st.floats(-4, 4),
    st.sampled_from([0.0, -0.0, 1e-30, 1e30, -1e30, float("nan"), float("inf"), -float("inf")]),
)


def vectors(d: int, big: float = 1e38) -> st.SearchStrategy:
    """Tensors meant to be ``d``-dimensional directions: random, zero, tiny, huge (up to
    ``big`` per entry), NaN, wrong shape or type."""
    import torch

    def build(case: tuple[str, int, float]):
        kind, seed, scale = case
        g = torch.Generator().manual_seed(seed)
        if kind == "random":
            return torch.randn(d, generator=g) * scale
        if kind == "zero":
            return torch.zeros(d)
        if kind == "nan":
            v = torch.randn(d, generator=g)
            v[seed % d] = float("nan")
            return v
        if kind == "shape":
            return torch.randn(d + 1 + seed % 3, generator=g)
        if kind == "matrix":
            return torch.randn(2, d, generator=g)
        if kind == "int":
            return torch.ones(d, dtype=torch.long)
        return [0.5] * d  # a plain list

    kinds = st.sampled_from(["random"] * 6 + ["zero", "nan", "shape", "matrix", "int", "list"])
    scales = st.sampled_from([1.0] * 4 + [1e-20, 1e20, big])
    return st.tuples(kinds, st.integers(0, 2**16), scales).map(build)
