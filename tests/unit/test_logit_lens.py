"""lens.logit_lens against independent computations on random tiny bridges.

The reference decodes TransformerLens's own ``run_with_cache`` residuals with the final
LayerNorm/RMSNorm written out by hand (statistics of each vector, float64) and the bridge's
``W_U``/``b_U``; it never calls ``interventions.readout``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lens
from lens.cli import main as cli_main
from lens.cli.lens_cmd import ByteTokenizer

PROMPTS = [[5, 9, 12, 40, 7, 3], [17, 4], [8, 8, 100, 2]]
TOL = 1e-5


@pytest.fixture(params=["native", "hf"])
def model(request, family, hf_folders):
    """Random gpt2-like and llama-like bridges, native and loaded from HF folders."""
    if request.param == "native":
        return lens.load_model(lens.tiny_config(family))
    return lens.load_model(hf_folders[family])


def hand_norm(model, h: torch.Tensor) -> torch.Tensor:
    """Final norm written out independently, in float64, with statistics of each vector."""
    ln = model.ln_final.original_component
    x = h.double()
    eps = model.cfg.eps
    if model.cfg.normalization_type.upper().startswith("RMS"):
        x = x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)
    else:
        x = x - x.mean(-1, keepdim=True)
        x = x / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + eps)
    x = x * ln.weight.double()
    if getattr(ln, "bias", None) is not None:
        x = x + ln.bias.double()
    return x


@torch.no_grad()
def reference_probs(model, b, layers=None, site="resid_post", norm=True, interventions=()):
    """[layers, batch, pos, vocab] float64 probabilities from run_with_cache."""
    layers = range(model.cfg.n_layers) if layers is None else layers
    with lens.apply(model, *interventions):
        _, cache = model.run_with_cache(b.tokens, attention_mask=b.attention_mask)
    w_u, b_u = model.W_U.double(), model.b_U.double()
    out = []
    for layer in layers:
        h = cache[f"blocks.{layer}.hook_{site}"]
        x = hand_norm(model, h) if norm else h.double()
        out.append(torch.softmax(x @ w_u + b_u, dim=-1))
    return torch.stack(out)


def check_against(res, ref, b, positions="all"):
    """Compare every decoded (layer, row, position) of ``res`` with ``ref`` probabilities."""
    k = res.top_ids.shape[-1]
    checked = 0
    for r in range(len(b)):
        for j, pos in enumerate(res.positions[r]):
            if not res.valid[r, j]:
                assert pos == -1 and (res.top_ids[:, r, j] == -1).all()
                continue
            p = ref[:, r, pos]  # [layers, vocab]
            top = p.topk(k, dim=-1)
            assert (torch.from_numpy(res.top_ids[:, r, j]) == top.indices).all()
            torch.testing.assert_close(
                torch.from_numpy(res.top_probs[:, r, j]).double(), top.values, atol=TOL, rtol=0
            )
            ent = -(p * p.clamp_min(1e-300).log()).sum(-1)
            torch.testing.assert_close(
                torch.from_numpy(res.entropy[:, r, j]).double(), ent, atol=1e-4, rtol=0
            )
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_matches_run_with_cache_every_layer(model, padding_side):
    b = lens.tokens.batch(model, PROMPTS, padding_side=padding_side)
    res = lens.logit_lens(model, b, positions="all", top_k=5)
    ref = reference_probs(model, b)
    assert res.top_ids.shape == (model.cfg.n_layers, 3, b.tokens.shape[1], 5)
    assert res.valid.tolist() == b.attention_mask.bool().tolist()
    check_against(res, ref, b)


def test_last_layer_equals_model_logits(model):
    b = lens.tokens.batch(model, PROMPTS, padding_side="left")
    res = lens.logit_lens(model, b, positions="all", top_k=4, targets=[3, 50, 7])
    with torch.no_grad():
        probs = torch.softmax(model(b.tokens, attention_mask=b.attention_mask).double(), -1)
    valid = b.attention_mask.bool()
    top = probs.topk(4, dim=-1)
    last = torch.from_numpy(res.top_probs[-1]).double()
    assert (torch.from_numpy(res.top_ids[-1])[valid] == top.indices[valid]).all()
    torch.testing.assert_close(last[valid], top.values[valid], atol=TOL, rtol=0)
    target_p = probs.gather(-1, torch.tensor([3, 50, 7])[:, None, None].expand(-1, 6, 1))[..., 0]
    torch.testing.assert_close(
        torch.from_numpy(res.target_probs[-1]).double()[valid], target_p[valid], atol=TOL, rtol=0
    )


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_batched_equals_one_by_one(native_model, padding_side):
    cats = {"low": set(range(0, 60)), "odd": set(range(1, 257, 2))}
    kw = dict(top_k=6, targets=[11, 22, 33], categories=cats, padding_side=padding_side)
    batched = lens.logit_lens(native_model, PROMPTS, positions="last", batch_size=2, **kw)
    for i, prompt in enumerate(PROMPTS):
        one = lens.logit_lens(
            native_model, [prompt], positions="last", **dict(kw, targets=[kw["targets"][i]])
        )
        assert (batched.top_ids[:, i] == one.top_ids[:, 0]).all()
        for name in ("top_probs", "entropy", "target_probs", "category_mass"):
            np.testing.assert_allclose(
                getattr(batched, name)[:, i],
                getattr(one, name)[:, 0],
                atol=TOL,
                rtol=0,
                err_msg=name,
            )
        assert (batched.target_ranks[:, i] == one.target_ranks[:, 0]).all()
        assert (
            batched.positions[i, 0]
            == lens.tokens.batch(native_model, PROMPTS, padding_side=padding_side).last_positions[i]
        )


def test_all_positions_batched_equals_one_by_one(native_model):
    batched = lens.logit_lens(native_model, PROMPTS, positions="all", top_k=3, batch_size=2)
    for i, prompt in enumerate(PROMPTS):
        one = lens.logit_lens(native_model, [prompt], positions="all", top_k=3)
        mine = batched.top_probs[:, i][:, batched.valid[i]]
        np.testing.assert_allclose(mine, one.top_probs[:, 0], atol=TOL, rtol=0)
        assert (batched.top_ids[:, i][:, batched.valid[i]] == one.top_ids[:, 0]).all()


def test_target_ranks_and_category_mass_brute_force(model):
    b = lens.tokens.batch(model, PROMPTS, padding_side="left")
    g = torch.Generator().manual_seed(1)
    vocab = model.cfg.d_vocab
    cats = {
        "random": set(torch.randperm(vocab, generator=g)[:40].tolist()),
        "overlap": set(range(0, vocab, 3)),
        "one": {5},
    }
    targets = [9, 200, 5]
    res = lens.logit_lens(model, b, positions="all", top_k=2, targets=targets, categories=cats)
    ref = reference_probs(model, b)
    assert res.category_names == list(cats)
    for r in range(len(b)):
        for pos in range(b.tokens.shape[1]):
            if not b.attention_mask[r, pos]:
                assert np.isnan(res.target_probs[:, r, pos]).all()
                continue
            for li in range(model.cfg.n_layers):
                p = ref[li, r, pos]
                order = p.argsort(descending=True).tolist()
                assert res.target_ranks[li, r, pos] == order.index(targets[r])
                assert abs(res.target_probs[li, r, pos] - float(p[targets[r]])) <= TOL
                for c, ids in enumerate(cats.values()):
                    brute = sum(float(p[i]) for i in ids)
                    assert abs(res.category_mass[li, r, pos, c] - brute) <= TOL


def test_string_targets_follow_the_token_rule(hf_folders):
    model = lens.load_model(hf_folders["llama"])
    if model.tokenizer is None:
        pytest.skip("no tokenizer in the random HF folder")
    # a word whose word-start form is one token, read by hand from the tokenizer (" Once" in
    # stories260k's tokenizer, " the" in the byte-level BPE used when stories260k is absent)
    tok, after = model.tokenizer, len(model.tokenizer.encode("x", add_special_tokens=False))
    starts = {w: tok.encode(f"x {w}", add_special_tokens=False)[after:] for w in ("Once", "the")}
    text, word = next((w, ids) for w, ids in starts.items() if len(ids) == 1)
    by_str = lens.logit_lens(model, ["Once upon a time"], targets=text)
    by_space = lens.logit_lens(model, ["Once upon a time"], targets=f" {text}")
    by_id = lens.logit_lens(model, ["Once upon a time"], targets=[word[0]])
    assert by_str.target_ids.tolist() == by_space.target_ids.tolist() == word
    np.testing.assert_array_equal(by_str.target_probs, by_id.target_probs)
    with pytest.raises(lens.tokens.TokenError, match="tokens"):  # several tokens: refused
        lens.logit_lens(model, ["Once upon a time"], targets="there once")


@pytest.mark.parametrize("site", ["resid_pre", "resid_mid"])
def test_other_sites_match_cache(native_model, site):
    b = lens.tokens.batch(native_model, PROMPTS, padding_side="right")
    res = lens.logit_lens(native_model, b, positions="all", top_k=3, site=site, layers=[0, 2])
    check_against(res, reference_probs(native_model, b, layers=[0, 2], site=site), b)
    assert res.layers.tolist() == [0, 2] and res.site == site


def test_large_vocab_peaked_logits_stay_precise():
    """float32 softmax over a large vocabulary with large logits: probabilities within 1e-6 and
    entropies within 1e-4 of a float64 computation of the same residuals."""
    model = lens.load_model(lens.tiny_config("gpt2", d_vocab=20_000))
    with torch.no_grad():
        model.unembed.original_component.weight.mul_(8.0)  # logits of size ~30: peaked
    b = lens.tokens.batch(model, PROMPTS, padding_side="right")
    res = lens.logit_lens(model, b, positions="all", top_k=5, targets=[3, 4, 5])
    ref = reference_probs(model, b)
    check_against(res, ref, b)
    top1 = torch.from_numpy(res.top_probs[..., 0])
    assert top1[torch.from_numpy(res.valid).expand_as(top1)].max() > 0.5  # really peaked
    gathered = ref.gather(-1, torch.tensor([3, 4, 5])[None, :, None, None].expand(3, 3, 6, 1))
    valid = torch.from_numpy(res.valid).expand(3, 3, 6)
    torch.testing.assert_close(
        torch.from_numpy(res.target_probs).double()[valid],
        gathered[..., 0][valid],
        atol=1e-6,
        rtol=0,
    )


def test_unembedding_bias_is_applied():
    model = lens.load_model(lens.tiny_config("gpt2"))
    head = model.unembed.original_component
    tokens = torch.tensor([[3, 1, 4, 1, 5]])
    with torch.no_grad():
        before = model(tokens)
        head.bias = torch.nn.Parameter(torch.randn(model.cfg.d_vocab))
        probs = torch.softmax(model(tokens).double(), -1)[0]
    assert (torch.softmax(before.double(), -1)[0] - probs).abs().max() > 1e-3  # bias is used
    res = lens.logit_lens(model, tokens, positions="all", top_k=3)
    top = probs.topk(3, -1)
    assert (torch.from_numpy(res.top_ids[-1, 0]) == top.indices).all()
    torch.testing.assert_close(
        torch.from_numpy(res.top_probs[-1, 0]).double(), top.values, atol=TOL, rtol=0
    )


def test_resid_pre_of_next_layer_equals_resid_post(native_model):
    post = lens.logit_lens(native_model, PROMPTS, layers=[0, 1], top_k=4)
    pre = lens.logit_lens(native_model, PROMPTS, layers=[1, 2], site="resid_pre", top_k=4)
    assert (post.top_ids == pre.top_ids).all()
    np.testing.assert_allclose(post.top_probs, pre.top_probs, atol=1e-6, rtol=0)


def test_norm_none_is_raw_unembedding(native_model):
    b = lens.tokens.batch(native_model, PROMPTS, padding_side="left")
    res = lens.logit_lens(native_model, b, positions="all", top_k=3, norm="none")
    check_against(res, reference_probs(native_model, b, norm=False), b)


def test_explicit_positions_match_all(native_model):
    b = lens.tokens.batch(native_model, PROMPTS, padding_side="left")
    full = lens.logit_lens(native_model, b, positions="all", top_k=3)
    some = lens.logit_lens(native_model, b, positions=[-1, 0, 3], top_k=3)
    assert some.positions.shape == (3, 3)
    for j, pos in enumerate([0, 3, 5]):  # sorted, negative resolved against width 6
        assert (some.valid[:, j] == full.valid[:, pos]).all()
        np.testing.assert_array_equal(some.top_ids[:, :, j], full.top_ids[:, :, pos])
    per_row = lens.logit_lens(native_model, b, positions=torch.tensor([5, 4, 3]), top_k=3)
    for r, pos in enumerate([5, 4, 3]):
        np.testing.assert_allclose(
            per_row.top_probs[:, r, 0], full.top_probs[:, r, pos], atol=1e-6, rtol=0
        )


def test_chunking_changes_nothing(native_model):
    kw = dict(positions="all", top_k=3, targets=[1, 2, 3], categories={"c": {1, 2}})
    small = lens.logit_lens(native_model, PROMPTS, chunk_size=5, batch_size=1, **kw)
    big = lens.logit_lens(native_model, PROMPTS, chunk_size=10_000, **kw)
    for name in ("top_ids", "target_ranks"):
        np.testing.assert_array_equal(getattr(small, name), getattr(big, name))
    for name in ("top_probs", "entropy", "target_probs", "category_mass"):
        np.testing.assert_allclose(getattr(small, name), getattr(big, name), atol=TOL, rtol=0)


class AddVector:
    """Test intervention: add a fixed vector to one layer's resid_post."""

    def __init__(self, layer: int, vector: torch.Tensor) -> None:
        self.layer, self.vector = layer, vector

    def hooks(self, model):
        def add(act, hook):
            return act + self.vector.to(act.device, act.dtype)

        return [(f"blocks.{self.layer}.hook_resid_post", add)]


def test_runs_under_interventions(native_model):
    before = lens.count_hooks(native_model)
    steer = AddVector(1, 3.0 * torch.randn(64, generator=torch.Generator().manual_seed(0)))
    b = lens.tokens.batch(native_model, PROMPTS, padding_side="left")
    res = lens.logit_lens(native_model, b, positions="all", top_k=4, interventions=[steer])
    assert lens.count_hooks(native_model) == before
    check_against(res, reference_probs(native_model, b, interventions=[steer]), b)
    plain = lens.logit_lens(native_model, b, positions="all", top_k=4)
    assert not np.allclose(plain.top_probs[1:], res.top_probs[1:], atol=1e-3, equal_nan=True)
    np.testing.assert_allclose(plain.top_probs[0], res.top_probs[0], atol=1e-6, rtol=0)


class Counter:
    """Test intervention: count calls at one hook, change nothing."""

    def __init__(self, name: str) -> None:
        self.name, self.calls = name, 0

    def hooks(self, model):
        def count(act, hook):
            self.calls += 1

        return [(self.name, count)]


def test_stop_early_matches_full_forward_and_skips_later_hooks(native_model):
    kw = dict(positions="all", top_k=4, targets=[1, 2, 3], layers=[1, 0])
    tokens = torch.tensor([PROMPTS[0]])
    with torch.no_grad():
        before = native_model(tokens)
    late = Counter("blocks.2.hook_resid_post")
    early = lens.logit_lens(native_model, PROMPTS, interventions=[late], **kw)
    assert late.calls == 0  # the forward ended after blocks.1
    full = lens.logit_lens(native_model, PROMPTS, interventions=[late], stop_early=False, **kw)
    assert late.calls == 1
    for name in ("top_ids", "target_ranks"):
        np.testing.assert_array_equal(getattr(early, name), getattr(full, name))
    for name in ("top_probs", "entropy", "target_probs"):
        np.testing.assert_array_equal(getattr(early, name), getattr(full, name))
    with torch.no_grad():  # the model is untouched afterwards
        torch.testing.assert_close(native_model(tokens), before, atol=0, rtol=0)
    assert lens.count_hooks(native_model) == 0


class Boom:
    def hooks(self, model):
        def fail(act, hook):
            raise RuntimeError("boom")

        return [("blocks.1.hook_resid_post", fail)]


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(site="resid_final"), ValueError),
        (dict(norm="cached"), ValueError),
        (dict(top_k=0), ValueError),
        (dict(top_k=10_000), ValueError),
        (dict(top_k=True), ValueError),  # a bool is not a count (it reached torch before)
        (dict(layers=[0, 7]), ValueError),
        (dict(layers="some"), ValueError),
        (dict(targets=[1, 2]), ValueError),
        (dict(targets=[1, 2, 99_999]), ValueError),
        (dict(targets="Paris"), ValueError),  # no tokenizer on a native model
        (dict(categories={"x": {99_999}}), ValueError),
        (dict(positions=[0, 50]), IndexError),
        (dict(positions="first"), ValueError),
        (dict(positions=torch.tensor([1, 2])), ValueError),
        (dict(interventions=[Boom()]), RuntimeError),
    ],
)
def test_bad_input_raises_and_leaves_no_hooks(native_model, kwargs, error):
    before = lens.count_hooks(native_model)
    with pytest.raises(error):
        lens.logit_lens(native_model, PROMPTS, **kwargs)
    assert lens.count_hooks(native_model) == before


def test_save_load_round_trip(native_model, tmp_path):
    res = lens.logit_lens(
        native_model,
        PROMPTS,
        positions="all",
        top_k=3,
        targets=[1, 2, 3],
        categories={"a": {1, 2}, "b": {3}},
    )
    back = lens.LogitLensResult.load(res.save(tmp_path / "out"))
    for name in res.DIMS:
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name), err_msg=name)
        assert getattr(back, name).dtype == getattr(res, name).dtype
    assert back.token_strings == res.token_strings
    assert (back.site, back.norm, back.category_names, back.model) == (
        res.site,
        res.norm,
        res.category_names,
        res.model,
    )
    as_json = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert as_json["top_ids"] == res.top_ids.tolist()
    assert as_json["dims"]["top_probs"] == ["layer", "batch", "position", "k"]
    assert as_json["target_probs"][0][1][0] is None  # left padding of the short prompt


def test_optional_arrays_absent_round_trip(native_model, tmp_path):
    res = lens.logit_lens(native_model, PROMPTS, top_k=2)
    back = lens.LogitLensResult.load(res.save(tmp_path))
    assert back.target_probs is None and back.category_mass is None
    np.testing.assert_array_equal(back.top_probs, res.top_probs)


def _is_png(path) -> bool:
    import matplotlib.image

    with open(path, "rb") as fh:
        header = fh.read(8)
    image = matplotlib.image.imread(path)
    return header == b"\x89PNG\r\n\x1a\n" and image.ndim == 3 and min(image.shape[:2]) > 50


def test_plots_are_valid_pngs(native_model, tmp_path):
    res = lens.logit_lens(
        native_model,
        PROMPTS,
        positions="all",
        top_k=2,
        targets=[1, 2, 3],
        categories={"a": set(range(30))},
    )
    assert _is_png(res.plot_grid(tmp_path / "grid.png", row=1))
    assert _is_png(res.plot_mass(tmp_path / "mass.png"))
    assert _is_png(res.plot_mass(tmp_path / "mass0.png", row=0, position=2))
    with pytest.raises(ValueError, match="targets or categories"):
        lens.logit_lens(native_model, PROMPTS, top_k=2).plot_mass(tmp_path / "x.png")
    with pytest.raises(IndexError):
        res.plot_grid(tmp_path / "bad.png", row=7)


def test_cli_runs_and_matches_api(tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli_main(
        ["lens", "random:gpt2", "hi there", "--top-k", "3", "--target", "e", "--out", str(out)]
    )
    assert code == 0
    text = capsys.readouterr().out
    table = [ln for ln in text.splitlines() if ln[:5].strip().isdigit()]
    assert len(table) == 3  # one line per layer of the tiny model
    assert all(_is_png(out / name) for name in ("grid.png", "mass.png"))
    saved = lens.LogitLensResult.load(out)
    model = lens.load_model(lens.tiny_config("gpt2"))
    model.tokenizer = ByteTokenizer()
    direct = lens.logit_lens(model, ["hi there"], positions="all", top_k=3, targets="e")
    np.testing.assert_array_equal(saved.top_ids, direct.top_ids)
    assert saved.target_ids.tolist() == [ord("e")]
    for li, line in enumerate(table):
        assert repr(direct.token_str(direct.top_ids[li, 0, -1, 0])) in line


def test_cli_bad_source_is_clean_error(capsys):
    assert cli_main(["lens", "random:mamba", "x"]) == 2
    assert "family must be" in capsys.readouterr().err


def test_token_sets_byte_tokenizer():
    tok = ByteTokenizer()
    exact = lens.token_sets(tok, {"ab": ["a", "b", " c "], "none": ["zz"]})
    assert exact == {"ab": {97, 98, 99}, "none": set()}
    prefix = lens.token_sets(tok, {"w": ["Hello"]}, mode="prefix")
    assert prefix == {"w": {ord("H")}}
    folded = lens.token_sets(tok, {"w": ["Hello"]}, mode="prefix", ignore_case=True)
    assert folded == {"w": {ord("H"), ord("h")}}
    with pytest.raises(ValueError):
        lens.token_sets(tok, {"w": "Hello"})
    with pytest.raises(ValueError):
        lens.token_sets(tok, {"w": ["x"]}, mode="fuzzy")


def test_token_sets_real_tokenizer(hf_folders):
    model = lens.load_model(hf_folders["llama"])
    tok = model.tokenizer
    if tok is None or len(tok) < 300:
        pytest.skip("needs the stories260k tokenizer")
    words = ["the", "there", "Lily", "happy", "garden"]
    exact = lens.token_sets(model, {"w": words})["w"]
    prefix = lens.token_sets(model, {"w": words}, mode="prefix")["w"]
    assert exact and exact <= prefix
    for i in exact:
        assert tok.decode([i]).strip() in words
    for i in prefix:
        assert any(w.startswith(tok.decode([i]).strip()) for w in words)
    for w in words:  # the first token of every word (split or not) is a prefix member
        first = tok.encode(w, add_special_tokens=False)[0]
        if tok.decode([first]).strip():
            assert first in prefix
        if len(tok.encode(w, add_special_tokens=False)) == 1:
            assert first in exact
