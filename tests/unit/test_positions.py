"""``positions`` means one thing in every public API that takes it.

The same ``positions`` go to ``lens.apply`` (a Probe and an intervention), ``lens.logit_lens``,
``lens.collect``, ``lens.finders.diff_in_means`` and ``lens.shortcuts.predict``, under left and
right padding; each must read (or write) the vectors at the same padded-batch columns. The
reference columns are computed here from the attention mask, independently of lens.
"""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import ActivationAddition, LinearShortcut
from interventions.base import ForwardContext
from lens.finders import diff_in_means
from lens.readout import decode
from lens.stats import PositionMeans

PROMPTS = [[5, 6, 7, 8, 9], [10, 11, 12]]
LAYER = 1
SITE = f"blocks.{LAYER}.hook_resid_pre"


def expected_columns(mask: torch.Tensor, positions) -> torch.Tensor:
    """[batch, k] padded-batch columns: "last" = last 1 in the mask, ints = columns."""
    seq = mask.shape[1]
    if positions == "last":
        last = [max(i for i in range(seq) if mask[r, i]) for r in range(mask.shape[0])]
        return torch.tensor(last)[:, None]
    cols = sorted(p + seq if p < 0 else p for p in positions)  # increasing column order
    return torch.tensor(cols).expand(mask.shape[0], -1)


@pytest.fixture(scope="module")
def model():
    return lens.load_model(lens.tiny_config("llama"))


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize(
    "positions", ["last", [2], [1, 0], [-3, -1]], ids=["last", "2", "1,0", "-3,-1"]
)
def test_every_api_reads_the_same_vectors(model, padding_side, positions):
    b = lens.tokens.batch(model, PROMPTS, padding_side=padding_side)
    cols = expected_columns(b.attention_mask, positions)  # [batch, k]
    real = b.attention_mask.gather(1, cols).bool()  # which of them hold a real token
    rows = torch.arange(len(b))[:, None]

    # reference: the whole activation, indexed here
    everything = lens.Probe(SITE)
    with lens.apply(model, probes=[everything]):
        clean_logits = model(b.tokens, attention_mask=b.attention_mask)
    ref = everything.value[rows, cols]  # [batch, k, d_model]

    # lens.apply + Probe
    probe = lens.Probe(SITE, positions=positions)
    with lens.apply(model, probes=[probe]):
        model(b.tokens, attention_mask=b.attention_mask)
    got = probe.value if positions != "last" else probe.value[:, None]
    assert torch.allclose(got, ref, atol=1e-6)

    # an intervention writes exactly there
    add = ActivationAddition(torch.ones(64), LAYER, coeff=3.0, positions=positions)
    steered = lens.Probe(SITE)  # the probe runs after the edit on the shared hook point
    plain = lens.Probe(SITE)
    with lens.apply(model, probes=[plain]):
        model(b.tokens, attention_mask=b.attention_mask)
    with lens.apply(model, add, probes=[steered]):
        model(b.tokens, attention_mask=b.attention_mask)
    changed = (steered.value - plain.value).abs().amax(-1) > 1e-4
    want = torch.zeros_like(changed)
    want[rows.expand_as(cols), cols] = True
    assert torch.equal(changed, want)

    # lens.logit_lens reads the same columns and decodes the same vectors
    targets = [3, 4]
    res = lens.logit_lens(
        model, b, layers=[LAYER], site="resid_pre", positions=positions, targets=targets
    )
    assert (res.positions == torch.where(real, cols, -1).numpy()).all()
    probs = torch.softmax(decode(model, ref.float()), -1)  # [batch, k, vocab]
    for r in range(len(b)):
        for k in range(cols.shape[1]):
            if real[r, k]:
                assert (
                    abs(res.target_probs[0, r, k] - float(probs[r, k, targets[r]].detach())) < 1e-5
                )

    # lens.collect: one group per prompt, so each slot's sum is that prompt's vector
    acc = PositionMeans.for_model(model, ["a", "b"], layers=[LAYER], n_positions=cols.shape[1])
    corpus = [(PROMPTS[0], "a"), (PROMPTS[1], "b")]
    lens.collect(
        model,
        corpus,
        accumulators=[acc],
        positions=positions,
        padding_side=padding_side,
        progress=False,
    )
    assert torch.equal(acc.count[:, 0], real.long())
    assert torch.allclose(acc.sum[:, 0].float(), ref * real[..., None], atol=1e-5)

    # diff_in_means: positive = prompt 0, negative = prompt 1, batched together
    kw = dict(layers=[LAYER], positions=positions, padding_side=padding_side, progress=False)
    if bool(real.all()):
        d = diff_in_means(model, [PROMPTS[0]], [PROMPTS[1]], **kw)
        assert torch.allclose(d.directions[0].float(), ref[0] - ref[1], atol=1e-5)
    else:
        with pytest.raises(ValueError, match="no tokens"):
            diff_in_means(model, [PROMPTS[0]], [PROMPTS[1]], **kw)

    # lens.shortcuts.predict decodes those positions (identity map at the last layer)
    last = int(model.cfg.n_layers) - 1
    sc = LinearShortcut(torch.eye(64), torch.zeros(64), last, last)
    pred = lens.shortcuts.predict(model, sc, b, positions=positions)
    pred = pred if positions != "last" else pred[:, None]
    assert torch.allclose(pred, clean_logits[rows, cols], atol=1e-4)


def test_from_end_counts_from_each_prompts_last_real_token(model):
    """from_end=[-2, -1] reads the last two real tokens under either padding."""
    sums = []
    for side in ("left", "right"):
        acc = PositionMeans.for_model(model, ["a", "b"], layers=[LAYER], n_positions=2)
        corpus = [(PROMPTS[0], "a"), (PROMPTS[1], "b")]
        lens.collect(
            model, corpus, accumulators=[acc], from_end=[-2, -1], padding_side=side, progress=False
        )
        sums.append(acc.sum[:, 0].float())
    one_by_one = []
    for p in PROMPTS:
        probe = lens.Probe(SITE)
        with lens.apply(model, probes=[probe]):
            model(torch.tensor([p]))
        one_by_one.append(probe.value[0, -2:])
    ref = torch.stack(one_by_one)
    assert torch.allclose(sums[0], ref, atol=1e-5) and torch.allclose(sums[1], ref, atol=1e-5)
    d = diff_in_means(model, [PROMPTS[0]], [PROMPTS[1]], layers=[LAYER], from_end=[-2, -1],
                      padding_side="right", progress=False)  # fmt: skip
    assert d.position_kind == "from_end" and d.positions == (-2, -1)
    assert torch.allclose(d.directions[0].float(), ref[0] - ref[1], atol=1e-5)
    with pytest.raises(ValueError, match="not both"):
        lens.collect(
            model, [(PROMPTS[0], "a")], accumulators=[acc], positions="last", from_end=[-1]
        )
    with pytest.raises(ValueError, match="one sign"):
        lens.collect(model, [(PROMPTS[0], "a")], accumulators=[acc], positions=[0, -1])


def test_last_positions_raises_on_a_mismatched_mask():
    ctx = ForwardContext(attention_mask=torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="attention mask has shape"):
        ctx.last_positions(2, 4, torch.device("cpu"))
    assert ForwardContext(None).last_positions(3, 4, torch.device("cpu")).tolist() == [3, 3, 3]
    right = ForwardContext(attention_mask=torch.tensor([[1, 1, 0], [1, 1, 1]]))
    assert right.last_positions(2, 3, torch.device("cpu")).tolist() == [1, 2]


def test_probe_last_without_a_mask_means_no_padding(model):
    """model(tokens) with no attention mask: 'last' is the last column (there is no padding)."""
    probe, everything = lens.Probe(SITE, positions="last"), lens.Probe(SITE)
    with lens.apply(model, probes=[probe, everything]):
        model(torch.tensor(PROMPTS[:1]))
    assert torch.equal(probe.value, everything.value[:, -1])


def test_collect_result_records_the_positions_and_sites_it_read(model):
    """CollectResult says what was read: positions (kind and indices) and (site, layer)."""
    corpus = [(PROMPTS[0], "a"), (PROMPTS[1], "b")]
    runs = [
        (dict(positions="all"), "all", "all"),
        (dict(positions="last"), "last", "from_end"),
        (dict(positions=[2, 0]), (0, 2), "columns"),
        (dict(from_end=[-2, -1]), (-2, -1), "from_end"),
    ]
    for kwargs, positions, kind in runs:
        n = 1 if positions in ("all", "last") else 2
        acc = PositionMeans.for_model(model, ["a", "b"], layers=[-2], n_positions=n)
        res = lens.collect(model, corpus, accumulators=[acc], progress=False, **kwargs)
        assert (res.positions, res.position_kind) == (positions, kind), kwargs
        assert res.hooks == [SITE] and res.sites == [("resid_pre", LAYER)]


def test_last_without_a_mask_on_a_right_padded_batch_raises(hf_model):
    """A right-padded batch run without its mask: 'last' would read padding, so it raises
    (probes and interventions alike) and names the fix; nothing stays installed."""
    from lens.hooks import count_hooks

    b = lens.tokens.batch(hf_model, [[5, 6, 7, 8], [9, 10]], padding_side="right")
    pad = int(b.tokens[1, -1])
    assert b.attention_mask[1, -1] == 0 and pad in (
        hf_model.tokenizer.pad_token_id,
        hf_model.tokenizer.eos_token_id,
    )
    before = count_hooks(hf_model)
    add = ActivationAddition(torch.ones(hf_model.cfg.d_model), LAYER, positions="last")
    for kw in ({"probes": [lens.Probe(SITE, positions="last")]}, {}):
        with pytest.raises(ValueError, match="attention_mask="):
            with lens.apply(hf_model, *([] if kw else [add]), **kw):
                hf_model(b.tokens)
    assert count_hooks(hf_model) == before
    # with the mask: the last real tokens, columns [3, 1], read by hand from the full capture
    probe, everything = lens.Probe(SITE, positions="last"), lens.Probe(SITE)
    with lens.apply(hf_model, probes=[probe, everything]):
        hf_model(b.tokens, attention_mask=b.attention_mask)
    torch.testing.assert_close(probe.value, everything.value[torch.arange(2), torch.tensor([3, 1])])
    # unpadded rows (one prompt, or equal lengths) and a left-padded batch need no mask:
    # their last column is the last real token
    for tokens in (b.tokens[:1], torch.tensor([[5, 6, 7], [8, 9, 10]])):
        with lens.apply(hf_model, probes=[probe, everything]):
            hf_model(tokens)
        assert torch.equal(probe.value, everything.value[:, -1])
    left = lens.tokens.batch(hf_model, [[5, 6, 7, 8], [9, 10]], padding_side="left")
    with lens.apply(hf_model, probes=[probe, everything]):
        hf_model(left.tokens)
    assert torch.equal(probe.value, everything.value[:, -1])


def test_a_right_padded_tensor_without_its_mask_is_refused(hf_model):
    """A raw [batch, pos] tensor whose rows end with the pad id unevenly cannot be read at
    'last' (its mask would be all ones): as_batch refuses it; an unpadded tensor passes."""
    b = lens.tokens.batch(hf_model, [[5, 6, 7, 8], [9, 10]], padding_side="right")
    with pytest.raises(ValueError, match="right-padded"):
        lens.tokens.as_batch(hf_model, b.tokens)
    with pytest.raises(ValueError, match="right-padded"):
        lens.logit_lens(hf_model, b.tokens, top_k=1)
    whole = lens.tokens.as_batch(hf_model, torch.tensor([[5, 6, 7], [8, 9, 10]]))
    assert whole.last_positions.tolist() == [2, 2]
