"""lens.tuned_lens on random tiny bridges: identity == logit lens exactly, decoding and KL
against hand computations, save/load, resume bit for bit, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lens
from interventions.affine import Affine
from lens.tuned_lens import TunedLens
from tests.unit.test_logit_lens import hand_norm

PROMPTS = [[5, 9, 12, 40, 7, 3], [17, 4], [8, 8, 100, 2]]
FIELDS = ("top_ids", "top_probs", "entropy", "target_probs", "target_ranks")


def corpus(n: int = 12, seed: int = 0) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randint(
            3, 250, (int(torch.randint(4, 20, (1,), generator=gen)),), generator=gen
        ).tolist()
        for _ in range(n)
    ]


def perturbed(model, scale: float = 0.3, seed: int = 1) -> TunedLens:
    """Identity translators plus a random perturbation (a stand-in for trained ones)."""
    gen = torch.Generator().manual_seed(seed)
    tl = TunedLens.identity(model)
    d = model.cfg.d_model
    tl.maps = [
        Affine(
            torch.eye(d) + scale * torch.randn(d, d, generator=gen) / d**0.5,
            scale * torch.randn(d, generator=gen),
        )
        for _ in tl.layers
    ]
    return tl


@pytest.mark.parametrize("positions", ["last", "all"])
def test_identity_equals_logit_lens_exactly(native_model, positions):
    kw = dict(positions=positions, targets=[3, 7, 9], top_k=5)
    plain = lens.logit_lens(native_model, PROMPTS, **kw)
    tuned = lens.logit_lens(
        native_model, PROMPTS, translator=TunedLens.identity(native_model), **kw
    )
    for name in FIELDS:
        assert np.array_equal(getattr(plain, name), getattr(tuned, name), equal_nan=True), name
    other = lens.logit_lens(native_model, PROMPTS, translator=perturbed(native_model), **kw)
    assert not np.allclose(plain.top_probs, other.top_probs, equal_nan=True)


@torch.no_grad()
def test_translated_decoding_matches_hand_computation(native_model):
    model, tl = native_model, perturbed(native_model)
    b = lens.tokens.batch(model, PROMPTS)
    res = lens.logit_lens(model, b, positions="all", top_k=model.cfg.d_vocab, translator=tl)
    _, cache = model.run_with_cache(b.tokens, attention_mask=b.attention_mask)
    w_u, b_u = model.W_U.double(), model.b_U.double()
    for i, layer in enumerate(tl.layers):
        h = cache[f"blocks.{layer}.hook_resid_post"].double()
        m = tl.maps[i]
        x = h @ m.weight.double().T + m.bias.double()
        probs = torch.softmax(hand_norm(model, x) @ w_u + b_u, dim=-1)
        valid = torch.as_tensor(res.valid)
        ours = torch.zeros_like(probs)
        ids = torch.as_tensor(res.top_ids[i]).clamp(min=0)
        ours.scatter_(-1, ids, torch.as_tensor(res.top_probs[i]).double().nan_to_num())
        assert torch.allclose(ours[valid], probs[valid], atol=1e-5), layer


@torch.no_grad()
def test_evaluate_kl_matches_hand_computation(native_model):
    model, tl = native_model, perturbed(native_model)
    docs = corpus(5)
    res = lens.tuned_lens.evaluate(model, docs, translator=tl)
    kl_logit, kl_tuned, ce, n = np.zeros(3), np.zeros(3), 0.0, 0
    for doc in docs:
        _, cache = model.run_with_cache(torch.tensor([doc]))
        final = torch.log_softmax(
            hand_norm(model, cache["blocks.2.hook_resid_post"][0]) @ model.W_U.double()
            + model.b_U.double(),
            -1,
        )
        ce -= float(final[torch.arange(len(doc) - 1), torch.tensor(doc[1:])].sum())
        for layer in range(3):
            h = cache[f"blocks.{layer}.hook_resid_post"][0].double()
            for j, x in enumerate((h, h @ tl.maps[layer].weight.double().T + tl.maps[layer].bias)):
                logq = torch.log_softmax(
                    hand_norm(model, x) @ model.W_U.double() + model.b_U.double(), -1
                )
                kl = float((final.exp() * (final - logq)).sum()) / np.log(2)
                (kl_logit if j == 0 else kl_tuned)[layer] += kl
        n += len(doc)
    assert res.n_tokens == n
    assert np.allclose(res.logit_kl_bits, kl_logit / n, atol=1e-4)
    assert np.allclose(res.tuned_kl_bits, kl_tuned / n, atol=1e-4)
    assert res.logit_kl_bits[2] < 1e-5 < res.tuned_kl_bits[2]  # differs from the clean run
    assert res.model_ce_bits == pytest.approx(ce / (n - len(docs)) / np.log(2), abs=1e-4)


def test_training_lowers_kl_and_round_trips(tmp_path, native_model):
    model = native_model
    tl = lens.tuned_lens.train(model, corpus(), steps=8, tokens_per_step=64, progress=False)
    assert tl.record["steps"] == 8 and tl.record["tokens"] >= 8 * 64
    before = lens.tuned_lens.evaluate(
        model, corpus(6, seed=5), translator=TunedLens.identity(model)
    )
    after = lens.tuned_lens.evaluate(model, corpus(6, seed=5), translator=tl)
    assert after.tuned_kl_bits[0] < before.tuned_kl_bits[0]
    loaded = lens.tuned_lens.load(tl.save(tmp_path / "tl"))
    assert loaded.layers == tl.layers and loaded.record == tl.record
    for a, b in zip(loaded.maps, tl.maps):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    a = lens.logit_lens(model, PROMPTS, translator=tl)
    b = lens.logit_lens(model, PROMPTS, translator=loaded)
    assert np.array_equal(a.top_probs, b.top_probs)


def test_resume_is_bit_identical(tmp_path, monkeypatch):
    model = lens.load_model(lens.tiny_config("llama"))
    kw = dict(steps=6, tokens_per_step=48, progress=False, seed=3)
    whole = lens.tuned_lens.train(model, corpus(), **kw)
    from lens.tuned_lens import training

    real_step, calls = training._step, {"n": 0}

    def crash_on_fifth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("simulated interruption")
        return real_step(*args, **kwargs)

    ckpt = tmp_path / "train.safetensors"
    monkeypatch.setattr(training, "_step", crash_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        lens.tuned_lens.train(model, corpus(), checkpoint=ckpt, checkpoint_every=2, **kw)
    monkeypatch.setattr(training, "_step", real_step)
    resumed = lens.tuned_lens.train(model, corpus(), checkpoint=ckpt, checkpoint_every=2, **kw)
    assert resumed.record["tokens"] == whole.record["tokens"]
    for a, b in zip(whole.maps, resumed.maps):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(whole.maps[0].weight, torch.eye(model.cfg.d_model))
    with pytest.raises(ValueError, match="other arguments"):
        lens.tuned_lens.train(model, corpus(), checkpoint=ckpt, **{**kw, "seed": 4})
    with pytest.raises(ValueError, match="corpus differs"):
        lens.tuned_lens.train(model, corpus(seed=9), checkpoint=ckpt, **kw)


def test_corrupt_training_checkpoint_raises(tmp_path):
    """A flipped byte in a checkpoint's tensor data fails the stored sha256 on resume."""
    from lens.stats import CheckpointError

    model = lens.load_model(lens.tiny_config("llama"))
    kw = dict(steps=2, tokens_per_step=48, progress=False, seed=3)
    ckpt = tmp_path / "train.safetensors"
    lens.tuned_lens.train(model, corpus(), checkpoint=ckpt, **kw)
    data = bytearray(ckpt.read_bytes())
    lens.tuned_lens.train(model, corpus(), checkpoint=ckpt, **kw)  # intact: resumes (done)
    data[-5] ^= 0x01  # the last bytes are tensor data (the header comes first)
    ckpt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the checksum"):
        lens.tuned_lens.train(model, corpus(), checkpoint=ckpt, **kw)


def test_translators_of_another_model_are_refused():
    model = lens.load_model(lens.tiny_config("llama"))
    tl = TunedLens.identity(model)
    before = lens.count_hooks(model)
    others = {
        "d_model": lens.load_model(lens.tiny_config("llama", d_model=32, d_head=8)),
        "n_layers": lens.load_model(lens.tiny_config("llama", n_layers=4)),
        "fingerprint": lens.load_model(lens.tiny_config("llama", seed=7)),
    }
    for what, other in others.items():
        match = "other weights" if what == "fingerprint" else what
        with pytest.raises(ValueError, match=match):
            lens.logit_lens(other, PROMPTS, translator=tl)
        with pytest.raises(ValueError, match=match):
            lens.tuned_lens.evaluate(other, corpus(2), translator=tl)
        assert lens.count_hooks(other) == 0
    with torch.no_grad():  # an in-place edit of the weights is caught too
        next(model.parameters()).add_(0.01)
    with pytest.raises(ValueError, match="other weights"):
        lens.logit_lens(model, PROMPTS, translator=tl)
    tl.strict = False
    lens.logit_lens(model, PROMPTS, translator=tl)  # shapes still fit: allowed when not strict
    assert lens.count_hooks(model) == before
    with pytest.raises(ValueError, match="read site"):
        lens.logit_lens(model, PROMPTS, translator=tl, site="resid_pre")
    partial = TunedLens.identity(model, layers=[0, 1])
    with pytest.raises(ValueError, match=r"no translator for layers \[2\]"):
        lens.logit_lens(model, PROMPTS, translator=partial)


def test_bad_corpora_are_refused():
    model = lens.load_model(lens.tiny_config("llama"))
    with pytest.raises(ValueError, match="empty"):
        lens.tuned_lens.train(model, [], steps=2, progress=False)
    with pytest.raises(ValueError, match="fewer than one step"):
        lens.tuned_lens.train(model, [[1, 2, 3]], steps=2, tokens_per_step=64, progress=False)
    with pytest.raises(ValueError, match="ran out"):
        gen = (doc for doc in corpus(3))
        lens.tuned_lens.train(model, gen, steps=50, tokens_per_step=16, progress=False)
    with pytest.raises(ValueError, match="steps must be"):
        lens.tuned_lens.train(model, corpus(), steps=0, progress=False)
    with pytest.raises(ValueError, match="empty text"):
        lens.tuned_lens.train(model, [""], steps=1, progress=False)
    with pytest.raises(FileNotFoundError, match="not a tuned-lens folder"):
        lens.tuned_lens.load("/nonexistent/folder")
