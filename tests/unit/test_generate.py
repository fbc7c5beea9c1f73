"""KV-cached generation (lens.generate): equal to the uncached loop and to transformers'
own generate on the same weights, under interventions and probes, with sampling, EOS,
streaming, the fallback warning and refused input."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import lens
from interventions import ActivationAddition
from lens.hooks import count_hooks
from tests.conftest import save_random_hf, stories_path

PROMPTS = ["Once upon a time", "The dog ran to the", "Lily had a"]
IDS = [[1, 203, 107, 61, 178], [1, 29, 81, 40], [1, 70, 9, 100, 200, 33, 7]]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def random_hf(request, tmp_path_factory):
    """A random transformers model (MHA gpt2 / GQA llama) as an HF folder, its bridge and the
    plain transformers model on the same weights."""
    from transformers import AutoModelForCausalLM

    folder = save_random_hf(request.param, Path(tmp_path_factory.mktemp(request.param)))
    hf = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    return lens.load_model(folder), hf


def hf_greedy(hf, ids: list[int], steps: int) -> list[int]:
    with torch.no_grad():
        out = hf.generate(
            torch.tensor([ids]),
            max_new_tokens=steps,
            min_new_tokens=steps,
            do_sample=False,
            pad_token_id=0,
        )
    return out[0, len(ids) :].tolist()


def test_cached_equals_uncached_and_transformers_on_random_models(random_hf):
    model, hf = random_hf
    assert lens.generate.cache_problem(model) is None
    cached = lens.generate.generate_tokens(model, IDS, max_new_tokens=12, stop_at_eos=False)
    plain = lens.generate.generate_tokens(
        model, IDS, max_new_tokens=12, stop_at_eos=False, use_cache=False
    )
    assert cached.cached and not plain.cached
    assert torch.equal(cached.tokens, plain.tokens)
    for row, ids in enumerate(IDS):
        assert cached.tokens[row].tolist() == hf_greedy(hf, ids, 12)
    assert len(set(map(tuple, cached.tokens.tolist()))) == len(IDS)  # not one trivial answer


def test_cached_equals_transformers_on_stories(stories_model):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(stories_path(), attn_implementation="eager").eval()
    out = lens.generate.generate_tokens(
        stories_model, PROMPTS, max_new_tokens=24, stop_at_eos=False
    )
    assert out.cached
    b = out.prompt
    for row in range(len(PROMPTS)):
        ids = b.tokens[row][b.attention_mask[row].bool()].tolist()
        assert out.tokens[row].tolist() == hf_greedy(hf, ids, 24)
    plain = lens.generate.greedy_tokens(
        stories_model, PROMPTS, max_new_tokens=24, stop_at_eos=False, use_cache=False
    )
    assert torch.equal(plain, out.tokens)


@pytest.mark.parametrize("positions", ["all", "generated", "prompt", 3, [-1]])
def test_cached_equals_uncached_under_steering(stories_model, positions):
    d = stories_model.cfg.d_model
    vec = torch.randn(d, generator=torch.Generator().manual_seed(1)) * 12
    steer = ActivationAddition(vec, layer=2, positions=positions)
    kw = dict(max_new_tokens=16, stop_at_eos=False, interventions=[steer])
    before = count_hooks(stories_model)
    cached = lens.generate.generate_tokens(stories_model, PROMPTS, **kw)
    plain = lens.generate.generate_tokens(stories_model, PROMPTS, use_cache=False, **kw)
    free = lens.generate.greedy_tokens(stories_model, PROMPTS, max_new_tokens=16, stop_at_eos=False)
    assert cached.cached
    assert torch.equal(cached.tokens, plain.tokens)
    assert not torch.equal(cached.tokens, free)  # the steering changed the text
    assert count_hooks(stories_model) == before


def test_generated_positions_leave_the_prompt_alone(stories_model):
    """Steering only generated tokens: the first new token (read at the last prompt token)
    is the unsteered one, later ones change; steering only the prompt equals running the
    prompt steered by an explicit column mask."""
    vec = torch.randn(stories_model.cfg.d_model, generator=torch.Generator().manual_seed(2)) * 6
    free = lens.generate.greedy_tokens(stories_model, PROMPTS, max_new_tokens=10, stop_at_eos=False)
    gen = ActivationAddition(vec, layer=1, positions="generated")
    steered = lens.generate.greedy_tokens(
        stories_model, PROMPTS, max_new_tokens=10, stop_at_eos=False, interventions=[gen]
    )
    assert torch.equal(steered[:, 0], free[:, 0])
    assert not torch.equal(steered, free)
    width = lens.tokens.batch(stories_model, PROMPTS).tokens.shape[1]
    prompt = ActivationAddition(vec, layer=1, positions="prompt")
    columns = ActivationAddition(vec, layer=1, positions=list(range(width)))
    a = lens.generate.greedy_tokens(
        stories_model, PROMPTS, max_new_tokens=10, stop_at_eos=False, interventions=[prompt]
    )
    b = lens.generate.greedy_tokens(
        stories_model, PROMPTS, max_new_tokens=10, stop_at_eos=False, interventions=[columns]
    )
    assert torch.equal(a, b) and not torch.equal(a, free)


def test_probe_last_collects_one_state_per_generated_token(random_hf):
    model, hf = random_hf
    name = "blocks.1.hook_resid_post"
    probe = lens.Probe(name, positions="last")
    out = lens.generate.generate_tokens(
        model, IDS[:2], max_new_tokens=6, stop_at_eos=False, probes=[probe]
    )
    states = torch.stack(probe.values, dim=1)  # [batch, new, d]
    assert states.shape == (2, 6, model.cfg.d_model)
    b = out.prompt
    full = torch.cat([b.tokens, out.tokens], dim=1)
    mask = torch.cat([b.attention_mask, torch.ones_like(out.tokens)], dim=1)
    positions = (mask.cumsum(1) - 1).clamp_min(0)  # left padding: positions count real tokens
    with torch.no_grad():  # independent: transformers' hidden states after block 1
        hidden = hf(
            full, attention_mask=mask, position_ids=positions, output_hidden_states=True
        ).hidden_states[2]
    width = b.tokens.shape[1]
    want = hidden[:, width - 1 : width + 5]
    torch.testing.assert_close(states, want, atol=1e-4, rtol=1e-4)


def test_eos_ends_each_row(stories_model):
    free = lens.generate.greedy_tokens(stories_model, PROMPTS, max_new_tokens=8, stop_at_eos=False)
    tok = stories_model.tokenizer
    eos_id = int(free[0, 2])  # make row 0's third token the end of sequence
    old = tok.eos_token
    tok.eos_token = tok.convert_ids_to_tokens(eos_id)
    try:
        for use_cache in (True, False):
            out = lens.generate.generate_tokens(
                stories_model, PROMPTS, max_new_tokens=8, use_cache=use_cache
            )
            for row in range(len(PROMPTS)):
                ids = free[row].tolist()
                n = ids.index(eos_id) + 1 if eos_id in ids else 8
                assert out.lengths[row] == n
                assert out.tokens[row, :n].tolist() == ids[:n]
                assert (out.tokens[row, n:] == eos_id).all()
    finally:
        tok.eos_token = old
    assert int(out.lengths[0]) == 3


def test_seeded_sampling_matches_transformers(stories_model):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(stories_path(), attn_implementation="eager").eval()
    ids = IDS[0]
    kw = dict(do_sample=True, temperature=0.8, top_k=40, top_p=0.9)
    torch.manual_seed(123)
    with torch.no_grad():
        want = hf.generate(torch.tensor([ids]), max_new_tokens=16, min_new_tokens=16, **kw)
    for use_cache in (True, False):
        got = lens.generate.generate_tokens(
            stories_model, [ids], max_new_tokens=16, stop_at_eos=False, seed=123,
            use_cache=use_cache, **kw,
        )  # fmt: skip
        assert got.tokens[0].tolist() == want[0, len(ids) :].tolist()
    other = lens.generate.generate_tokens(
        stories_model, [ids], max_new_tokens=16, stop_at_eos=False, seed=7, **kw
    )
    greedy = lens.generate.greedy_tokens(stories_model, [ids], max_new_tokens=16, stop_at_eos=False)
    assert other.tokens[0].tolist() != want[0, len(ids) :].tolist()
    assert got.tokens[0].tolist() != greedy[0].tolist()


def test_stream_pieces_add_up_to_the_text(stories_model):
    pieces: dict[int, list[str]] = {0: [], 1: [], 2: []}
    out = lens.generate.generate_tokens(
        stories_model,
        PROMPTS,
        max_new_tokens=12,
        stream=lambda row, text: pieces[row].append(text),
    )
    texts = out.texts(stories_model)
    for row in range(3):
        assert len(pieces[row]) > 3
        assert "".join(pieces[row]) == texts[row]


def test_native_models_fall_back_with_a_warning():
    model = lens.load_model(lens.tiny_config("llama"))
    with pytest.warns(lens.generate.NoCacheWarning, match="native"):
        out = lens.generate.generate_tokens(model, IDS, max_new_tokens=4, stop_at_eos=False)
    assert not out.cached and "native" in (out.no_cache_reason or "")
    with pytest.raises(ValueError, match="use_cache=True"):
        lens.generate.generate_tokens(model, IDS, max_new_tokens=4, use_cache=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = lens.generate.greedy_tokens(model, IDS, max_new_tokens=4, use_cache=False)
    assert torch.equal(plain, out.tokens)


@pytest.mark.parametrize(
    "kw, error, match",
    [
        (dict(max_new_tokens=0), ValueError, "max_new_tokens must be >= 1"),
        (dict(max_new_tokens=-3), ValueError, "max_new_tokens must be >= 1"),
        (dict(max_new_tokens=2.5), TypeError, "integer"),
        (dict(do_sample=True, temperature=0.0), ValueError, "temperature must be > 0"),
        (dict(do_sample=True, temperature=-1.0), ValueError, "temperature must be > 0"),
        (dict(do_sample=True, top_p=0.0), ValueError, "top_p"),
        (dict(do_sample=True, top_k=0), ValueError, "top_k"),
        (dict(temperature=0.7), ValueError, "do_sample=True"),
        (dict(max_new_tokens=10_000), ValueError, "context"),
        (dict(interventions=[ActivationAddition(torch.ones(64), layer=9)]), ValueError, "0..2"),
    ],
)
def test_bad_input_is_refused_with_nothing_left_installed(random_hf, kw, error, match):
    model, _ = random_hf
    before = count_hooks(model)
    with pytest.raises(error, match=match):
        lens.generate.generate_tokens(model, IDS, **kw)
    assert count_hooks(model) == before


@pytest.mark.parametrize(
    "positions", ["last", "prompt", "generated", 3, [-1, 0], [1, 4], torch.tensor([3, 4])]
)
def test_cached_forward_positions_are_the_full_forward_columns(positions):
    """A forward over columns 3..4 after 3 cached ones touches exactly columns 3..4 of what
    the same positions touch in one forward over all 5 columns."""
    from interventions.base import ForwardContext, pop_forward, position_mask, push_forward

    owner = torch.nn.Linear(1, 1)
    mask = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    results = []
    for past, width in ((0, 5), (3, 2)):
        push_forward(owner, ForwardContext(mask, past=past, prompt_columns=4))
        try:
            got = position_mask(owner, positions, torch.zeros(2, width, 8))
        finally:
            pop_forward(owner)
        results.append(torch.ones(2, width, dtype=torch.bool) if got is None else got)
    full, cached = results
    assert torch.equal(cached, full[:, 3:])
    assert full.any() and not full.all()
