"""The blocked decode kernel (lens.readout.kernel.decode_stack) against a float64 reference.

The reference is a plain full-vocabulary computation written here: the final norm by hand in
float64, ``z = x @ W_U + b_U`` (soft-capped when asked), ``torch.softmax`` over the whole
vocabulary, a stable descending sort for the top-k (ties to the lower token id), and
``(z > z_target).sum()`` for ranks. Tolerances (absolute): probabilities and category mass
1e-6, entropy 5e-6 (see ENTROPY_TOL); ids and ranks exactly equal.

Exact id/rank comparisons on random inputs are made only on rows without near-ties in the
float64 logits (a float32 kernel cannot order values closer than its rounding); the test
asserts most rows qualify. Exact ties are tested on integer-valued inputs, whose float32
logits are exact whatever the summation order. The previous (unblocked) kernel is kept
below as a second reference of record.
"""

from __future__ import annotations

import pytest
import torch

import lens
from lens.readout import kernel
from lens.readout.kernel import decode_stack

TOL = 1e-6
# entropy (~5 nats here) sums every logit's float32 rounding: the previous kernel is off the
# float64 value by up to ~2e-6 too (float32 spacing at 5.0 is 4.8e-7)
ENTROPY_TOL = 5e-6
GAP = 1e-5  # relative gap below which two float64 logits count as a near-tie (float32: 6e-8)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models():
    return {f: lens.load_model(lens.tiny_config(f)) for f in ("llama", "gpt2")}


def hand_norm(model, h):
    ln = model.ln_final.original_component
    x = h.double()
    if model.cfg.normalization_type.upper().startswith("RMS"):
        x = x / torch.sqrt((x * x).mean(-1, keepdim=True) + model.cfg.eps)
    else:
        x = x - x.mean(-1, keepdim=True)
        x = x / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + model.cfg.eps)
    x = x * ln.weight.double()
    if getattr(ln, "bias", None) is not None:
        x = x + ln.bias.double()
    return x


@torch.no_grad()
def reference(x, weight, bias=None, cap=None, k=5, targets=None, categories=None):
    """Float64 full-vocabulary decode of already-normalized rows ``x``; weight ``[vocab, d]``."""
    z = x.double() @ weight.double().T
    if bias is not None:
        z = z + bias.double()
    if cap is not None:
        z = cap * torch.tanh(z / cap)
    p = torch.softmax(z, -1)
    order = torch.sort(z, descending=True, stable=True).indices[:, :k]
    out = {
        "z": z,
        "top_ids": order,
        "top_probs": p.gather(1, order),
        "entropy": -(p * torch.log_softmax(z, -1)).sum(-1),
    }
    if targets is not None:
        z_t = z.gather(1, targets[:, None])
        out["target_ranks"] = (z > z_t).sum(-1)
        out["target_probs"] = p.gather(1, targets[:, None])[:, 0]
    if categories is not None:
        out["category_mass"] = p @ categories.double()
    return out


def separated(z, k, targets=None):
    """Rows whose top k+1 logits, and the target's neighbours, are apart by more than GAP."""
    scale = z.abs().amax(-1)
    top = torch.sort(z, descending=True).values[:, : k + 1]
    ok = torch.ones(z.shape[0], dtype=torch.bool)
    if top.shape[1] > 1:
        ok &= (top[:, :-1] - top[:, 1:]).amin(-1) > GAP * scale
    if targets is not None:
        d = (z - z.gather(1, targets[:, None])).abs()
        d.scatter_(1, targets[:, None], float("inf"))
        ok &= d.amin(-1) > GAP * scale
    return ok


def check(out, ref, rows, keys=None):
    for key in keys or [k for k in out if k != "z"]:
        got, want = out[key][rows], ref[key][rows]
        if key in ("top_ids", "target_ranks"):
            assert torch.equal(got, want), key
        else:
            assert got.dtype == torch.float32, key
            tol = ENTROPY_TOL if key == "entropy" else TOL
            torch.testing.assert_close(got.double(), want, rtol=0, atol=tol, msg=key)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("vocab", [257, 256, 1])
@pytest.mark.parametrize("k", [1, 5, 20])
def test_blocked_equals_float64_reference(models, family, vocab, k):
    """Block 64 over vocabularies that are (256), are not (257) and fall short of (1) a
    multiple of it; k=20 spans more than one block of 8 below (and here block 64 > k)."""
    if k > vocab:
        pytest.skip("top_k cannot exceed the vocabulary")
    model = models[family]
    gen = torch.Generator().manual_seed(vocab + k)
    weight = torch.randn(vocab, model.cfg.d_model, generator=gen) / 4  # logits ~ N(0, 4)
    bias = torch.randn(vocab, generator=gen)
    h = 4 * torch.randn(200, model.cfg.d_model, generator=gen)
    targets = torch.randint(0, vocab, (200,), generator=gen)
    cats = torch.rand(vocab, 3, generator=gen)
    x = hand_norm(model, h)
    ref = reference(x, weight, bias, k=k, targets=targets, categories=cats)
    for block in (64, 8, 150):  # 150: two groups of GROUP=64 tokens and a tail of 22
        out = decode_stack(
            model, h, top_k=k, target_ids=targets, category_matrix=cats,
            chunk_size=48, weight=weight, bias=bias, block_size=block,
        )  # fmt: skip
        rows = separated(ref["z"], k, targets)
        assert rows.float().mean() > 0.8
        check(out, ref, rows)
        check(out, ref, slice(None), ["top_probs", "entropy", "target_probs", "category_mass"])
    if vocab > 1:  # not the trivial answer
        assert ref["target_ranks"].unique().numel() > 10
        assert (ref["entropy"] < torch.log(torch.tensor(float(vocab))) - 0.1).all()


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_model_unembedding_norm_and_soft_cap(models, family):
    """The model's own W_U/b_U and final norm, with and without a logit soft-cap."""
    model = models[family]
    gen = torch.Generator().manual_seed(1)
    h = 3 * torch.randn(150, model.cfg.d_model, generator=gen)
    targets = torch.randint(0, model.cfg.d_vocab, (150,), generator=gen)
    x = hand_norm(model, h)
    w_u = model.W_U.T
    b_u = model.b_U if family == "gpt2" else None
    old_cap = getattr(model.cfg, "output_logits_soft_cap", -1.0)
    try:
        for cap in (None, 0.5):
            model.cfg.output_logits_soft_cap = -1.0 if cap is None else cap
            ref = reference(x, w_u, b_u, cap=cap, k=7, targets=targets)
            out = decode_stack(model, h, top_k=7, target_ids=targets, chunk_size=64, block_size=40)
            rows = separated(ref["z"], 7, targets)
            assert rows.float().mean() > 0.8
            check(out, ref, rows)
            check(out, ref, slice(None), ["top_probs", "entropy", "target_probs"])
            assert out["entropy"].std() > 1e-3  # rows differ
    finally:
        model.cfg.output_logits_soft_cap = old_cap


@pytest.mark.parametrize("vocab", [257, 256, 9])
def test_exact_ties_go_to_the_lower_id(models, vocab):
    """Integer inputs: every float32 logit is exact, so ties are exact and abundant."""
    model = models["llama"]
    gen = torch.Generator().manual_seed(vocab)
    weight = torch.randint(-2, 3, (vocab, 64), generator=gen).float()
    weight[5] = weight[vocab - 1]  # duplicated rows: tied logits on every row
    h = torch.randint(-2, 3, (120, 64), generator=gen).float()
    h[:10] = 0  # all logits equal: top-k are ids 0..k-1, every rank 0
    targets = torch.randint(0, vocab, (120,), generator=gen)
    targets[10:20] = vocab - 1  # tied with id 5
    k = 8
    ref = reference(h, weight, k=k, targets=targets)
    for block in (64, 4, 3, 100):  # 100: one group of 64 tokens and a tail of 36
        out = decode_stack(
            model, h, top_k=k, target_ids=targets, norm="none",
            chunk_size=32, weight=weight, block_size=block,
        )  # fmt: skip
        check(out, ref, slice(None))
    assert torch.equal(out["top_ids"][:10], torch.arange(k).expand(10, k))
    n_ties = (ref["z"][:, :, None] == ref["z"].gather(1, ref["top_ids"])[:, None]).sum(1)
    assert (n_ties > 1).any()  # the test really has ties inside the top-k


def test_float32_accumulation_for_bf16_model():
    model = lens.load_model(lens.tiny_config("llama"), dtype=torch.bfloat16)
    gen = torch.Generator().manual_seed(2)
    h = torch.randn(64, 64, generator=gen).bfloat16()
    targets = torch.randint(0, 257, (64,), generator=gen)
    weight, bias = kernel.unembed_parts(model)
    assert weight.dtype == torch.float32
    ref = reference(hand_norm(model, h.float()), weight, bias, k=4, targets=targets)
    out = decode_stack(model, h, top_k=4, target_ids=targets, block_size=16)
    check(out, ref, slice(None), ["top_probs", "entropy", "target_probs"])
    rows = separated(ref["z"], 4, targets)
    check(out, ref, rows, ["top_ids", "target_ranks"])


def test_rank_fallback_when_window_misses_the_target(models):
    """A row whose target logit falls outside its counting window is recounted exactly."""
    model = models["gpt2"]
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(40, 64, generator=gen)
    weight, bias = kernel.unembed_parts(model)
    targets = torch.randint(0, 257, (40,), generator=gen)
    tile = kernel._Tile(weight, bias, None, 40, 64)
    ranks = kernel._Ranks(tile, x, targets)
    ranks.lo[:20] = ranks.hi[:20] = -1e9  # a window that cannot hold the target logit
    for v0 in range(0, 257, 64):
        ranks.add(tile.logits(x, v0)[0], v0)
    z_t, got = ranks.result()
    ref = reference(x, weight, bias, targets=targets)
    assert torch.equal(got, ref["target_ranks"])
    want = ref["z"].gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(z_t.double(), want, rtol=0, atol=TOL)


def test_equals_previous_kernel(models):
    """Same results as the unblocked kernel this replaced (copied below) on both families."""
    gen = torch.Generator().manual_seed(4)
    for model in models.values():
        h = 3 * torch.randn(300, 64, generator=gen)
        targets = torch.randint(0, 257, (300,), generator=gen)
        cats = torch.rand(257, 2, generator=gen)
        kw = dict(top_k=12, target_ids=targets, category_matrix=cats, chunk_size=100)
        new = decode_stack(model, h, block_size=50, **kw)
        old = previous_decode_stack(model, h, **kw)
        rows = separated(reference(hand_norm(model, h), model.W_U.T, model.b_U)["z"], 12, targets)
        assert rows.float().mean() > 0.8
        for key in new:
            if key in ("top_ids", "target_ranks"):
                assert torch.equal(new[key][rows], old[key][rows]), key
            else:
                torch.testing.assert_close(new[key], old[key], rtol=0, atol=TOL)


def test_no_rows_and_bad_k(models):
    model = models["llama"]
    out = decode_stack(model, torch.zeros(0, 64), top_k=3, target_ids=torch.zeros(0).long())
    assert out["top_ids"].shape == (0, 3) and out["target_ranks"].shape == (0,)
    with pytest.raises(ValueError, match="1..257"):
        decode_stack(model, torch.zeros(2, 64), top_k=258)


@torch.no_grad()
def previous_decode_stack(model, h, *, top_k, target_ids, category_matrix, chunk_size):
    """The decode kernel before blocking (lens 0.3.0), kept as a reference of record."""
    from lens.readout.core import final_norm

    weight, bias = kernel.unembed_parts(model)
    x = final_norm(model, h.to(weight.dtype))
    parts: dict[str, list] = {k: [] for k in ("top_ids", "top_probs", "entropy")}
    parts |= {"target_probs": [], "target_ranks": [], "category_mass": []}
    for start in range(0, x.shape[0], chunk_size):
        z = x[start : start + chunk_size] @ weight.T
        if bias is not None:
            z = z + bias
        values, ids = z.topk(top_k, dim=-1)
        z_t = z.gather(1, target_ids[start : start + chunk_size, None])
        parts["target_ranks"].append((z > z_t).sum(-1))
        z = z - values[:, :1]
        e = torch.exp(z)
        total = e.sum(-1)
        parts["top_ids"].append(ids)
        parts["top_probs"].append(torch.exp(values - values[:, :1]) / total[:, None])
        parts["target_probs"].append(torch.exp(z_t[:, 0] - values[:, 0]) / total)
        parts["category_mass"].append((e @ category_matrix) / total[:, None])
        parts["entropy"].append(total.log() - (e * z).sum(-1) / total)
    return {k: torch.cat(v) for k, v in parts.items()}


def test_peaked_rows_far_below_the_maximum(models):
    """Logits spread over hundreds of nats (trained models reach ~120 at middle layers): most
    ``exp(z - m)`` underflow float32 and the kernel's exp2 path must still give the reference."""
    model = models["llama"]
    gen = torch.Generator().manual_seed(3)
    vocab = 300
    weight = torch.randn(vocab, 64, generator=gen) / 4  # logits ~ N(0, 4) ...
    bias = -400 * torch.rand(vocab, generator=gen)  # ... pushed down by up to 400 nats
    bias[:20] = 0
    h = torch.randn(90, 64, generator=gen)
    targets = torch.randint(0, vocab, (90,), generator=gen)
    ref = reference(h, weight, bias, k=5, targets=targets)
    assert ((ref["z"].amax(-1, keepdim=True) - ref["z"]) > 104).float().mean() > 0.5
    out = decode_stack(
        model, h, top_k=5, target_ids=targets, norm="none", chunk_size=32, weight=weight,
        bias=bias, block_size=70,
    )  # fmt: skip
    check(out, ref, separated(ref["z"], 5, targets))
    check(out, ref, slice(None), ["top_probs", "entropy", "target_probs"])
    assert out["entropy"].std() > 1e-3  # rows differ
