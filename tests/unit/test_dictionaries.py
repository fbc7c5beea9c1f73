"""Sparse dictionaries: splicing, editing, formats (hand-made SAELens / sparsify folders) and
bad input, each against a computation by hand with plain torch."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import lens
from interventions import from_dict
from lens.dictionaries import (
    SAE,
    FeatureAblation,
    FeatureSteering,
    SpliceSAE,
    Transcoder,
    load,
    random_sae,
    save,
    save_saelens,
)
from lens.stats import CheckpointError

FAMILIES = ("gpt2", "llama")
TOKENS = torch.tensor([[5, 9, 3, 17, 2, 40], [7, 7, 1, 60, 33, 8]])


@pytest.fixture(scope="module")
def models():
    return {f: lens.load_model(lens.tiny_config(f)) for f in FAMILIES}


def _trained_like(model, site="resid_post", layer=1, n=96, k=6, seed=0, **kw) -> SAE:
    """A random dictionary with non-zero biases (so no term is trivially absent)."""
    sae = random_sae(model, site=site, layer=layer, n_latents=n, k=k, seed=seed, **kw)
    g = torch.Generator().manual_seed(seed + 1)
    sae.b_enc = 0.1 * torch.randn(sae.d_sae, generator=g)
    sae.b_dec = 0.1 * torch.randn(sae.d_in, generator=g)
    sae.W_enc = sae.W_enc * 0.5 + 0.05 * torch.randn(sae.W_enc.shape, generator=g)
    return sae


def _manual_topk(x, w_enc, b_enc, w_dec, b_dec, k, subtract=True):
    pre = (x - b_dec if subtract else x) @ w_enc + b_enc
    vals, idx = torch.sort(pre, dim=-1, descending=True)
    feats = torch.zeros_like(pre)
    feats.scatter_(-1, idx[..., :k], torch.clamp(vals[..., :k], min=0))
    return feats, feats @ w_dec + b_dec


def _capture(model, name, *interventions, tokens=TOKENS):
    probe = lens.Probe(name)
    with lens.apply(model, *interventions, probes=[probe]):
        logits = model(tokens)
    return probe.value, logits


class _Replace:
    """A hand-written intervention: replace one hook's activation by fn(activation)."""

    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def hooks(self, model):
        return [(self.name, lambda act, hook: self.fn(act))]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("site", ["resid_post", "resid_pre", "mlp_out"])
def test_splice_with_error_equals_clean_forward(models, family, site):
    model = models[family]
    sae = _trained_like(model, site=site)
    clean = model(TOKENS)
    with lens.apply(model, SpliceSAE(sae, error=True)):
        spliced = model(TOKENS)
    with lens.apply(model, SpliceSAE(sae, error=False)):
        recon_only = model(TOKENS)
    assert (spliced - clean).abs().max() < 1e-5
    assert (recon_only - clean).abs().max() > 1e-2  # the reconstruction is not the identity


@pytest.mark.parametrize("family", FAMILIES)
def test_splice_without_error_equals_manual_reconstruction(models, family):
    model = models[family]
    sae = _trained_like(model)
    x, _ = _capture(model, sae.in_hook)
    _, recon = _manual_topk(x, sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec, sae.k)
    with lens.apply(model, _Replace(sae.in_hook, lambda act: recon)):
        expected = model(TOKENS)
    with lens.apply(model, SpliceSAE(sae, error=False)):
        got = model(TOKENS)
    assert (got - expected).abs().max() < 1e-5
    loss = torch.nn.functional.cross_entropy(got[:, :-1].flatten(0, 1), TOKENS[:, 1:].flatten())
    ref = torch.nn.functional.cross_entropy(expected[:, :-1].flatten(0, 1), TOKENS[:, 1:].flatten())
    assert abs(float((loss - ref).detach())) < 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_transcoder_splice(models, family):
    model = models[family]
    tc = random_sae(model, site="mlp_in_normalised", layer=1, n_latents=80, k=5, out_site="mlp_out")
    assert isinstance(tc, Transcoder)
    clean = model(TOKENS)
    with lens.apply(model, SpliceSAE(tc, error=True)):
        assert (model(TOKENS) - clean).abs().max() < 1e-5
    x_in, _ = _capture(model, "blocks.1.mlp.hook_in")
    _, pred = _manual_topk(x_in, tc.W_enc, tc.b_enc, tc.W_dec, tc.b_dec, tc.k, subtract=False)
    with lens.apply(model, _Replace("blocks.1.hook_mlp_out", lambda act: pred)):
        expected = model(TOKENS)
    with lens.apply(model, SpliceSAE(tc, error=False)):
        got = model(TOKENS)
    assert (got - expected).abs().max() < 1e-5
    assert (got - clean).abs().max() > 1e-3


def test_topk_encode_equals_manual_topk():
    g = torch.Generator().manual_seed(3)
    w_enc, w_dec = torch.randn(16, 40, generator=g), torch.randn(40, 16, generator=g)
    b_enc, b_dec = torch.randn(40, generator=g), torch.randn(16, generator=g)
    sae = SAE(w_enc, b_enc, w_dec, b_dec, site="resid_post", layer=0, k=7)
    x = torch.randn(5, 11, 16, generator=g)
    feats, recon = _manual_topk(x, w_enc, b_enc, w_dec, b_dec, 7)
    assert torch.allclose(sae.encode(x), feats, atol=1e-6)
    assert torch.allclose(sae.reconstruct(x), recon, atol=1e-5)
    assert int((sae.encode(x) > 0).sum(-1).max()) == 7


@pytest.mark.parametrize("family", FAMILIES)
def test_feature_ablation_removes_exactly_its_decoder_contribution(models, family):
    model = models[family]
    sae = _trained_like(model, site="resid_pre", layer=2)
    x, _ = _capture(model, sae.in_hook)
    feats, _ = _manual_topk(x, sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec, sae.k)
    f = int(feats.sum((0, 1)).argmax())  # the feature most active on these tokens
    assert float(feats[..., f].abs().sum()) > 0
    ablated, _ = _capture(model, sae.in_hook, FeatureAblation(sae, [f]))
    expected = x - feats[..., f : f + 1] * sae.W_dec[f]
    assert (ablated - expected).abs().max() < 1e-5
    assert (ablated - x).abs().max() > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_steering_adds_value_times_decoder_row(models, family):
    model = models[family]
    sae = _trained_like(model, site="resid_post", layer=0)
    x, _ = _capture(model, sae.in_hook)
    steered, _ = _capture(model, sae.in_hook, FeatureSteering(sae, {4: 3.0, 9: -1.5}))
    expected = x + 3.0 * sae.W_dec[4] + (-1.5) * sae.W_dec[9]
    assert (steered - expected).abs().max() < 1e-5
    last, _ = _capture(model, sae.in_hook, FeatureSteering(sae, {4: 3.0}, positions="last"))
    assert (last[:, :-1] - x[:, :-1]).abs().max() == 0
    assert (last[:, -1] - (x[:, -1] + 3.0 * sae.W_dec[4])).abs().max() < 1e-5
    clamped, _ = _capture(model, sae.in_hook, FeatureSteering(sae, {4: 2.0}, mode="clamp"))
    feats, _ = _manual_topk(x, sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec, sae.k)
    expected = x + (2.0 - feats[..., 4:5]) * sae.W_dec[4]
    assert (clamped - expected).abs().max() < 1e-5


def test_json_round_trip_and_batched_equals_single(models):
    model = models["llama"]
    sae = _trained_like(model)
    for item in (
        SpliceSAE(sae, error=False, positions=[0, -1]),
        FeatureAblation(sae, [1, 2]),
        FeatureSteering(sae, {3: 1.25}, mode="clamp", positions="last"),
    ):
        spec = json.loads(json.dumps(item.to_dict()))
        back = from_dict(spec)
        assert back.to_dict() == item.to_dict()
        with lens.apply(model, item):
            a = model(TOKENS)
        with lens.apply(model, back):
            b = model(TOKENS)
        assert torch.equal(a, b)
    splice = SpliceSAE(sae, error=False, positions="last")
    prompts = [[5, 9, 3], [7, 7, 1, 60, 33]]
    b = lens.tokens.batch(model, prompts, padding_side="left")
    with lens.apply(model, splice):
        batched = model(b.tokens, attention_mask=b.attention_mask)[:, -1]
        single = [model(torch.tensor([p]))[0, -1] for p in prompts]
    assert (batched - torch.stack(single)).abs().max() < 1e-4


def _saelens_folder(tmp_path, arch, d_in=64, d_sae=48, hook="blocks.1.hook_resid_pre"):
    g = torch.Generator().manual_seed(7)
    w = {
        "W_enc": torch.randn(d_in, d_sae, generator=g) * 0.2,
        "b_enc": torch.randn(d_sae, generator=g) * 0.1,
        "W_dec": torch.randn(d_sae, d_in, generator=g) * 0.2,
        "b_dec": torch.randn(d_in, generator=g) * 0.1,
    }
    cfg = {
        "architecture": arch,
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "metadata": {"hook_name": hook, "model_name": "tiny", "sae_lens_version": "6.5.0"},
    }
    if arch == "topk":
        cfg["k"] = 5
    if arch == "jumprelu":
        w["threshold"] = torch.rand(d_sae, generator=g) * 0.3
    folder = tmp_path / f"saelens_{arch}"
    folder.mkdir()
    save_file(w, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder, w


@pytest.mark.parametrize("arch", ["topk", "standard", "jumprelu"])
def test_saelens_folder_loads_and_encodes_like_manual(tmp_path, models, arch):
    folder, w = _saelens_folder(tmp_path, arch)
    sae = load(folder)
    assert (sae.site, sae.layer, sae.d_sae) == ("resid_pre", 1, 48)
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(1))
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    if arch == "topk":
        feats, _ = _manual_topk(x, w["W_enc"], w["b_enc"], w["W_dec"], w["b_dec"], 5)
    elif arch == "standard":
        feats = torch.clamp(pre, min=0)
    else:
        feats = pre * (pre > w["threshold"]).float() * (pre > 0).float()
    assert (feats > 0).any()
    assert torch.allclose(sae.encode(x), feats, atol=1e-6)
    assert torch.allclose(sae.decode(feats), feats @ w["W_dec"] + w["b_dec"], atol=1e-6)
    sae.check(models["llama"])  # fits the tiny model's resid_pre at layer 1
    again = load(save_saelens(sae, tmp_path / "resaved"))
    own = load(save(sae, tmp_path / "own"))
    for other in (again, own):
        assert all(torch.equal(other.tensors()[k], v) for k, v in sae.tensors().items())
        assert (other.site, other.layer, other.k, other.activation) == (
            sae.site,
            sae.layer,
            sae.k,
            sae.activation,
        )


@pytest.mark.parametrize("transcode", [False, True])
def test_sparsify_folder_loads_and_encodes_like_manual(tmp_path, models, transcode):
    g = torch.Generator().manual_seed(11)
    d_in, n = 64, 32
    w = {
        "encoder.weight": torch.randn(n, d_in, generator=g) * 0.3,
        "encoder.bias": torch.randn(n, generator=g) * 0.1,
        "W_dec": torch.randn(n, d_in, generator=g) * 0.3,
        "b_dec": torch.randn(d_in, generator=g) * 0.1,
    }
    folder = tmp_path / "run" / ("layers.1.mlp" if transcode else "layers.2")
    folder.mkdir(parents=True)
    save_file(w, str(folder / "sae.safetensors"))
    cfg = {
        "activation": "topk",
        "expansion_factor": 32,
        "normalize_decoder": True,
        "num_latents": n,
        "k": 4,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": transcode,
        "d_in": d_in,
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(FileNotFoundError, match="hookpoint"):
        load(tmp_path / "run")
    sae = load(tmp_path / "run", hookpoint=folder.name)
    x = torch.randn(6, d_in, generator=g)
    inp = x if transcode else x - w["b_dec"]
    pre = torch.relu(inp @ w["encoder.weight"].T + w["encoder.bias"])
    vals, idx = pre.topk(4, dim=-1)
    y = torch.zeros(6, n).scatter(-1, idx, vals) @ w["W_dec"] + w["b_dec"]
    assert torch.allclose(sae.reconstruct(x), y, atol=1e-5)
    if transcode:
        assert isinstance(sae, Transcoder) and sae.out_hook == "blocks.1.hook_mlp_out"
    else:
        assert sae.in_hook == "blocks.2.hook_resid_post"
    sae.check(models["gpt2"])


def test_corrupt_or_truncated_weights_raise_checkpoint_error(tmp_path, models):
    sae = _trained_like(models["llama"])
    own = save(sae, tmp_path / "own")
    data = bytearray((own / "dictionary.safetensors").read_bytes())
    data[-5] ^= 0xFF  # a flipped bit in the tensor data
    (own / "dictionary.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load(own)
    theirs = save_saelens(sae, tmp_path / "theirs")
    raw = (theirs / "sae_weights.safetensors").read_bytes()
    (theirs / "sae_weights.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError):
        load(theirs)


def _nan_everywhere(name):
    return _Replace(name, lambda act: torch.full_like(act, float("nan")))


def test_bad_input_raises_and_leaves_nothing_installed(models):
    model = models["llama"]
    before = lens.count_hooks(model)
    wide = SAE(
        torch.zeros(32, 8),
        torch.zeros(8),
        torch.zeros(8, 32),
        torch.zeros(32),
        site="resid_post",
        layer=1,
        activation="relu",
    )
    with pytest.raises(ValueError, match=r"width 32.*width 64"):
        lens.apply(model, SpliceSAE(wide))
    deep = random_sae(model, site="resid_post", layer=2, n_latents=16, k=2)
    deep.layer = 7
    with pytest.raises(ValueError, match=r"layer 7.*layers 0\.\.2"):
        lens.apply(model, FeatureAblation(deep, [0]))
    sae = _trained_like(model)
    with pytest.raises(ValueError, match=r"feature 96 does not exist.*0\.\.95"):
        FeatureAblation(sae, [96])
    with pytest.raises(ValueError, match="writes 'resid_mid'"):
        SpliceSAE(random_sae(model, site="resid_mid", layer=0, n_latents=16, k=2))
    with pytest.raises(ValueError, match="NaN"):
        with lens.apply(model, _nan_everywhere("blocks.0.hook_resid_post"), SpliceSAE(sae)):
            model(TOKENS)
    assert lens.count_hooks(model) == before
