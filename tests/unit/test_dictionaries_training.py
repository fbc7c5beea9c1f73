"""Dictionary training: unit-norm decoder after every step, bit-identical resume, the
streamed buffer, transcoders with the same trainer."""

from __future__ import annotations

import pytest
import torch

import lens
from lens.dictionaries import SAE, Trainer, random_sae, train
from lens.dictionaries import training as training_mod


@pytest.fixture(scope="module")
def model():
    return lens.load_model(lens.tiny_config("llama"))


def _docs(n=40, length=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, 250, (length,), generator=g).tolist() for _ in range(n)]


def test_decoder_rows_unit_norm_after_every_step():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(48, 16, generator=g)
    sae = SAE(w.T.clone(), torch.zeros(48), w, torch.zeros(16), site="resid_post", layer=0, k=4)
    trainer = Trainer(sae, lr=3e-2, dead_after_tokens=64)
    first = None
    for step in range(25):
        stats = trainer.step(torch.randn(64, 16, generator=g) * 3)
        norms = trainer.params["W_dec"].detach().norm(dim=-1)
        assert (norms - 1).abs().max() < 1e-5, step
        first = first or stats["fvu"]
    assert trainer.params["W_dec"].detach().sub(w / w.norm(dim=-1, keepdim=True)).abs().max() > 0.01
    assert stats["fvu"] < first  # it learns
    assert 0 < stats["l0"] <= 4


def test_resume_is_bit_identical(model, tmp_path, monkeypatch):
    kwargs = dict(
        layer=1,
        n_latents=64,
        k=4,
        batch_size=96,
        buffer_tokens=400,
        steps=8,
        rows_per_forward=4,
        checkpoint_every=3,
        seed=2,
    )
    ref = train(model, _docs(), **kwargs)
    ckpt = tmp_path / "sae.ckpt"
    calls = {"n": 0}
    real_step = training_mod.Trainer.step

    def failing(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_step(self, *a, **kw)

    monkeypatch.setattr(training_mod.Trainer, "step", failing)
    with pytest.raises(KeyboardInterrupt):
        train(model, _docs(), checkpoint=ckpt, **kwargs)
    monkeypatch.setattr(training_mod.Trainer, "step", real_step)
    resumed = train(model, _docs(), checkpoint=ckpt, **kwargs)
    for name, t in ref.tensors().items():
        assert torch.equal(resumed.tensors()[name], t), name
    assert resumed.meta["training"]["log"] == ref.meta["training"]["log"]
    with pytest.raises(ValueError, match="corpus differs"):
        train(model, _docs(seed=9), checkpoint=ckpt, **kwargs)
    fresh = train(model, _docs(), **{**kwargs, "seed": 3})
    assert not torch.equal(fresh.W_dec, ref.W_dec)


def test_resume_continues_a_corpus_cut_short(model, tmp_path):
    """A run stopped because its corpus ran out, resumed with a longer corpus that starts with
    the same documents, reads on from where it stopped and goes on training; a corpus shorter
    than what the checkpoint read is refused."""
    kwargs = dict(layer=1, n_latents=64, k=4, batch_size=50, buffer_tokens=100, seed=1)
    kwargs.update(rows_per_forward=2, steps=30, checkpoint_every=1)
    docs = _docs(24)
    ckpt = tmp_path / "sae.ckpt"
    short = train(model, docs[:6], checkpoint=ckpt, **kwargs)
    short_steps = short.meta["training"]["steps"]
    assert short_steps < 30  # the short corpus stopped it
    resumed = train(model, docs, checkpoint=ckpt, **kwargs)
    rec = resumed.meta["training"]
    assert rec["steps"] > short_steps
    assert rec["tokens_read"] > short.meta["training"]["tokens_read"]
    assert not torch.equal(resumed.W_dec, short.W_dec)
    with pytest.raises(ValueError, match="only 3"):
        train(model, docs[:3], checkpoint=ckpt, **kwargs)


def test_training_reconstructs_and_records(model):
    sae = train(
        model,
        _docs(140),
        layer=1,
        n_latents=128,
        k=8,
        batch_size=128,
        buffer_tokens=512,
        steps=40,
        lr=1e-2,
    )
    rec = sae.meta["training"]
    assert rec["steps"] == 40 and rec["log"][0]["step"] == 1
    assert rec["log"][-1]["fvu"] < rec["log"][0]["fvu"]
    # the folded dictionary reads raw activations: check FVU directly on fresh tokens
    probe = lens.Probe(sae.in_hook)
    with lens.apply(model, probes=[probe]):
        model(torch.tensor(_docs(4, seed=5)))
    x = probe.value.flatten(0, 1)
    fvu = float((x - sae.reconstruct(x)).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert fvu < 0.9
    assert abs(fvu - rec["last"]["fvu"]) < 0.3  # the folding kept the scale


def test_transcoder_trains_with_the_same_trainer(model):
    tc = train(
        model,
        _docs(100),
        site="mlp_in_normalised",
        out_site="mlp_out",
        layer=0,
        n_latents=96,
        k=8,
        batch_size=128,
        buffer_tokens=512,
        steps=30,
        lr=1e-2,
    )
    assert type(tc).__name__ == "Transcoder" and tc.out_hook == "blocks.0.hook_mlp_out"
    log = tc.meta["training"]["log"]
    assert log[-1]["fvu"] < log[0]["fvu"]


def test_bad_training_arguments(model):
    with pytest.raises(ValueError, match="buffer_tokens"):
        train(model, _docs(2), layer=0, n_latents=8, k=2, batch_size=64, buffer_tokens=32)
    with pytest.raises(ValueError, match="layers 0..2"):
        train(model, _docs(2), layer=5, n_latents=8, k=2)
    with pytest.raises(ValueError, match="TopK"):
        Trainer(random_sae(model, site="resid_post", layer=0, n_latents=8, activation="relu"))


def _dense_reference_step(params, opt, x, k, dead, aux_coeff):
    """One TopK + AuxK step written out in plain torch with dense autograd (encoder held as
    [d_sae, d_in]); the decoder gradient along each row removed, rows renormalised."""
    w_enc, b_enc, w_dec, b_dec = params
    total_var = (x - x.mean(0)).pow(2).sum()
    pre = (x - b_dec) @ w_enc.T + b_enc
    top = pre.detach().topk(k, dim=-1).indices
    feats = torch.zeros_like(pre).scatter(-1, top, torch.relu(pre.gather(-1, top)))
    err = x - (feats @ w_dec + b_dec)
    loss = err.pow(2).sum() / total_var
    half = x.shape[1] // 2
    k_aux = min(half, int(dead.sum()))
    masked = torch.where(dead, pre.detach(), torch.full_like(pre, -float("inf")))
    aux_top = masked.topk(k_aux, dim=-1).indices
    aux_feats = torch.zeros_like(pre).scatter(-1, aux_top, torch.relu(pre.gather(-1, aux_top)))
    scale = min(int(dead.sum()) / half, 1.0)
    aux = scale * (aux_feats @ w_dec - err.detach()).pow(2).sum() / total_var
    (loss + aux_coeff * aux).backward()
    with torch.no_grad():
        w_dec.grad -= (w_dec.grad * w_dec).sum(-1, keepdim=True) * w_dec
    opt.step()
    opt.zero_grad()
    with torch.no_grad():
        w_dec /= w_dec.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("backward", ["sparse", "dense"])
def test_step_equals_dense_reference(backward):
    """Two steps (the second with dead latents, so AuxK is on) of the trainer against the
    plain-torch reference: every parameter within 1e-5 and moved by far more than that."""
    g = torch.Generator().manual_seed(3)
    d, n, k = 24, 96, 4
    w = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)
    b_enc, b_dec = 0.1 * torch.randn(n, generator=g), 0.1 * torch.randn(d, generator=g)
    sae = SAE(w.T.clone(), b_enc, w, b_dec, site="resid_post", layer=0, k=k)
    trainer = Trainer(sae, lr=1e-2, dead_after_tokens=100, backward=backward)
    ref = [torch.nn.Parameter(t.clone()) for t in (w, b_enc, w, b_dec)]
    opt = torch.optim.Adam(ref, lr=1e-2, eps=6.25e-10)
    batches = [torch.randn(128, d, generator=g) * 2 for _ in range(2)]
    for i, x in enumerate(batches):
        dead = trainer.since_fired > trainer.dead_after
        assert bool(dead.any()) == (i == 1)
        _dense_reference_step(ref, opt, x, k, dead, trainer.aux_coeff)
        stats = trainer.step(x)
        if i == 1:
            assert stats["aux"] > 0
    for name, want in zip(("W_enc", "b_enc", "W_dec", "b_dec"), ref):
        got = trainer.params[name].detach()
        assert (got - want.detach()).abs().max() < 1e-5, name
        start = {"W_enc": w, "b_enc": b_enc, "W_dec": w, "b_dec": b_dec}[name]
        assert (got - start).abs().max() > 1e-3, name
