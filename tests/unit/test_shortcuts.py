"""LinearShortcut: exact identity, recovery of an exactly linear map, predict == hook form."""

from __future__ import annotations

import json

import pytest
import torch

import lens
from interventions import LinearShortcut
from lens.readout import decode


@pytest.fixture(params=["native", "hf"])
def model(request, family, hf_folders):
    if request.param == "native":
        return lens.load_model(lens.tiny_config(family))
    return lens.load_model(hf_folders[family])


def _prompts(n: int, seed: int = 0, lo: int = 4, hi: int = 10) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi, (n,), generator=g).tolist()
    return [torch.randint(3, 250, (k,), generator=g).tolist() for k in lengths]


@pytest.mark.parametrize("method", ["jacobian", "lstsq"])
def test_src_equals_dst_is_identity(model, method):
    sc = lens.shortcuts.fit(
        model, _prompts(3), src_layer=1, dst_layer=1, method=method, progress=False
    )
    d = model.cfg.d_model
    assert torch.equal(sc.weight, torch.eye(d))
    assert torch.equal(sc.bias, torch.zeros(d))


class _Linearise:
    """Blocks src+1..dst made exactly affine: attention/MLP outputs zeroed, resid_post mapped."""

    def __init__(self, a, c, src, dst):
        self.a, self.c, self.src, self.dst = a, c, src, dst

    def hooks(self, model):
        zero = lambda act, hook: torch.zeros_like(act)  # noqa: E731
        pairs = []
        for layer in range(self.src + 1, self.dst + 1):
            pairs += [
                (f"blocks.{layer}.hook_attn_out", zero),
                (f"blocks.{layer}.hook_mlp_out", zero),
            ]
        affine = lambda act, hook: act @ self.a.T + self.c  # noqa: E731
        pairs.append((f"blocks.{self.src + 1}.hook_resid_post", affine))
        return pairs


@pytest.mark.parametrize("method", ["jacobian", "lstsq"])
def test_recovers_exactly_linear_map(model, method):
    d = model.cfg.d_model
    g = torch.Generator().manual_seed(7)
    a = torch.eye(d) + 0.3 * torch.randn(d, d, generator=g) / d**0.5
    c = 0.5 * torch.randn(d, generator=g)
    prompts = _prompts(4 if method == "jacobian" else 40, seed=1)
    positions = "last" if method == "jacobian" else "all"
    with lens.apply(model, _Linearise(a, c, 0, 2)):
        sc = lens.shortcuts.fit(
            model,
            prompts,
            src_layer=0,
            dst_layer=2,
            method=method,
            positions=positions,
            progress=False,
        )
    assert sc.meta["n_samples"] >= (4 if method == "jacobian" else d + 1)
    assert (sc.weight - a).abs().max() <= 1e-4
    assert (sc.bias - c).abs().max() <= 1e-4


def test_predict_matches_hook_form_and_stops_early(model):
    sc = lens.shortcuts.fit(
        model, _prompts(3), src_layer=0, method="jacobian", beta=1.5, progress=False
    )
    tokens = torch.tensor(_prompts(2, seed=2, lo=6, hi=7))
    mask = torch.ones_like(tokens)
    mask[0, :2] = 0
    with lens.apply(model, sc):
        hooked = model(tokens, attention_mask=mask)
    calls = []
    # plain torch hooks on the attention modules (not hook points, so they do not stop the early
    # exit): block 1 must not run for src=0
    handles = [
        model.blocks[i].attn.register_forward_hook(lambda *_, i=i: calls.append(i)) for i in (0, 1)
    ]
    try:
        fast = lens.shortcuts.predict(model, sc, tokens, attention_mask=mask)
    finally:
        for h in handles:
            h.remove()
    assert calls == [0], "blocks after src ran during predict"
    # a hook of an outer apply after src is never skipped: the forward then runs to the end
    spied: list[int] = []
    with lens.apply(model, _Spy(spied)):
        outer = lens.shortcuts.predict(model, sc, tokens, attention_mask=mask)
    assert spied == [0, 1] and torch.equal(outer, fast)
    assert (fast - hooked)[mask.bool()].abs().max() <= 1e-4
    # independent: decode(beta W h + b) from a probe of h
    probe = lens.Probe("blocks.0.hook_resid_post")
    with lens.apply(model, probes=[probe]):
        model(tokens, attention_mask=mask)
    manual = decode(model, 1.5 * probe.value @ sc.weight.T + sc.bias)
    assert (fast - manual).abs().max() <= 1e-5


class _Spy:
    """Records which of blocks 0 and 1 computed attention (an outer apply's hooks)."""

    def __init__(self, calls):
        self.calls = calls

    def hooks(self, model):
        return [
            (f"blocks.{layer}.hook_attn_out", lambda act, hook, i=layer: self.calls.append(i))
            for layer in (0, 1)
        ]


def test_faithfulness_matches_manual(native_model):
    model = native_model
    sc = lens.shortcuts.fit(
        model, _prompts(20), src_layer=1, method="lstsq", positions="all", progress=False
    )
    held_out = _prompts(6, seed=5)
    res = lens.shortcuts.faithfulness(model, sc, held_out, batch_size=4)
    agree = []
    for row in held_out:
        t = torch.tensor([row])
        probe = lens.Probe("blocks.1.hook_resid_post")
        with lens.apply(model, probes=[probe]):
            logits = model(t)
        mine = decode(model, probe.value[0, -1] @ sc.weight.T + sc.bias).argmax()
        agree.append(int(mine == logits[0, -1].argmax()))
    assert res.n == 6 and res.agreement == pytest.approx(sum(agree) / 6, abs=0)


def test_identity_at_last_layer_is_fully_faithful(native_model):
    d, last = native_model.cfg.d_model, native_model.cfg.n_layers - 1
    sc = LinearShortcut(torch.eye(d), torch.zeros(d), last, last)
    assert lens.shortcuts.faithfulness(native_model, sc, _prompts(5)).agreement == 1.0


def test_save_load_roundtrip(tmp_path, native_model):
    sc = lens.shortcuts.fit(
        native_model, _prompts(3), src_layer=0, dst_layer=2, beta=0.5, progress=False
    )
    sc.save(tmp_path / "sc")
    assert json.loads((tmp_path / "sc" / "shortcut.json").read_text())["src_layer"] == 0
    back = LinearShortcut.load(tmp_path / "sc")
    assert torch.equal(back.weight, sc.weight) and torch.equal(back.bias, sc.bias)
    assert (back.src_layer, back.dst_layer, back.beta, back.meta) == (0, 2, 0.5, sc.meta)
    t = torch.tensor(_prompts(1, seed=9))
    assert torch.equal(
        lens.shortcuts.predict(native_model, back, t), lens.shortcuts.predict(native_model, sc, t)
    )
    with pytest.raises(FileNotFoundError):
        LinearShortcut.load(tmp_path / "missing")


def test_stories_layer2_to_last(stories_model, capsys):
    model = stories_model
    texts = [
        "Once upon a time, there was a little girl named Lily. She",
        "Tom had a big red ball. He liked to",
        "The sun was shining and the birds were",
        "One day, a dog found a bone in the",
        'Mom said, "Time for bed." The boy was',
        "The cat sat on the mat and looked at the",
        "Sara wanted to play with her friend. She went to the",
        "There was a small tree in the garden. Every day, the",
    ]
    train = lens.tokens.batch(model, texts[:6] * 2)
    held = lens.tokens.batch(model, texts[6:] + texts[:2])
    last = model.cfg.n_layers - 1
    scores, fits = {}, {}
    for method in ("jacobian", "lstsq"):
        positions = "last" if method == "jacobian" else "all"
        sc = lens.shortcuts.fit(
            model, train, src_layer=2, method=method, positions=positions, progress=False
        )
        assert sc.dst_layer == last
        scores[method] = lens.shortcuts.faithfulness(model, sc, held).agreement
        fits[method] = sc
    fits["identity"] = LinearShortcut(torch.eye(64), torch.zeros(64), 2, last)
    scores["identity (logit lens)"] = lens.shortcuts.faithfulness(
        model, fits["identity"], held
    ).agreement
    with capsys.disabled():
        print(f"\nstories260k shortcut 2->last faithfulness (top-1 agreement): {scores}")
    # least squares minimises the training error: no other affine map may beat it there
    b = lens.tokens.batch(model, texts[:6])
    probes = [lens.Probe("blocks.2.hook_resid_post"), lens.Probe(f"blocks.{last}.hook_resid_post")]
    with lens.apply(model, probes=probes):
        model(b.tokens, attention_mask=b.attention_mask)
    real = b.attention_mask.bool()
    h, z = probes[0].value[real].double(), probes[1].value[real].double()
    err = {k: float((v.transform(h.float()).double() - z).pow(2).mean()) for k, v in fits.items()}
    assert err["lstsq"] <= min(err["jacobian"], err["identity"]) * (1 + 1e-4)


def test_predict_decodes_only_the_positions_asked_for(native_model):
    """positions='last' / integer columns == the same rows of the all-positions decode."""
    sc = LinearShortcut(torch.eye(64) * 0.9, torch.full((64,), 0.1), 0, 2)
    b = lens.tokens.batch(native_model, _prompts(3, seed=4), padding_side="right")
    full = lens.shortcuts.predict(native_model, sc, b)
    rows = torch.arange(3)
    last = lens.shortcuts.predict(native_model, sc, b, positions="last")
    cols = lens.shortcuts.predict(native_model, sc, b, positions=[0, -1])
    assert last.shape == (3, full.shape[-1]) and cols.shape == (3, 2, full.shape[-1])
    assert torch.allclose(last, full[rows, b.last_positions], atol=1e-5)
    assert torch.allclose(cols, full[:, [0, -1]], atol=1e-5)
    assert not torch.allclose(last, full[:, -1], atol=1e-3)  # right padding: not the last column


def test_reassigned_weight_is_used_and_checked():
    """The map is an interventions.affine.Affine rebuilt (and re-checked) on reassignment."""
    g = torch.Generator().manual_seed(0)
    w, b, h = torch.randn(6, 6, generator=g), torch.randn(6, generator=g), torch.randn(3, 6)
    sc = LinearShortcut(torch.eye(6), b, 0, 1, beta=0.5)
    torch.testing.assert_close(sc.transform(h), 0.5 * h + b, atol=1e-6, rtol=0)
    sc.weight = w
    expected = 0.5 * torch.einsum("ij,nj->ni", w.double(), h.double()) + b.double()
    torch.testing.assert_close(sc.transform(h).double(), expected, atol=1e-5, rtol=0)
    sc.weight = torch.full((6, 6), float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        sc.transform(h)


def test_loads_a_folder_in_the_original_layout(tmp_path):
    """A folder written by hand in the first release's layout (keys weight/bias) still loads."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(1)
    w, b = torch.randn(4, 4, generator=g), torch.randn(4, generator=g)
    save_file({"weight": w, "bias": b}, str(tmp_path / "shortcut.safetensors"))
    spec = {"type": "LinearShortcut", "src_layer": 0, "dst_layer": 2, "beta": 2.0, "meta": {}}
    (tmp_path / "shortcut.json").write_text(json.dumps(spec))
    sc = LinearShortcut.load(tmp_path)
    assert torch.equal(sc.weight, w) and torch.equal(sc.bias, b) and sc.beta == 2.0
