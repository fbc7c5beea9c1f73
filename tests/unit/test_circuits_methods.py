"""Exact scores equal EdgePatch run one edge at a time; per-pair and per-position scores sum
to the aggregate; threshold selection; EAP-IG along the activations checked by hand; the named
metrics against hand-written callables; mean ablation against a hand computation."""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import EdgePatch
from interventions.edge_graph import layout
from lens.circuits import (
    attribute,
    faithfulness,
    faithfulness_curve,
    mean_writer_outputs,
    writer_outputs,
)
from lens.readout.core import decode
from lens.tokens import as_batch

CLEAN = torch.tensor([[5, 9, 2, 7, 11, 4], [3, 3, 8, 1, 4, 9]])
CORRUPT = torch.tensor([[5, 9, 20, 7, 11, 4], [3, 30, 8, 1, 4, 9]])
ANS, WRONG = [17, 33], [40, 12]


@pytest.fixture(scope="module")
def llama():
    torch.set_num_threads(1)
    return lens.load_model(lens.tiny_config("llama"))


def _ld(logits, rows=None):
    rows = range(len(ANS)) if rows is None else rows
    return torch.stack(
        [logits[i, -1, ANS[r]] - logits[i, -1, WRONG[r]] for i, r in enumerate(rows)]
    )


def test_exact_equals_edge_patch_one_edge_at_a_time(llama):
    g = attribute(llama, CLEAN, CORRUPT, answer=ANS, wrong=WRONG, method="exact", per_pair=True)
    lay = g.layout
    values = writer_outputs(llama, as_batch(llama, CLEAN))
    with torch.no_grad():
        base = _ld(llama(CORRUPT))
    picks = [e[:2] for e in g.ranked()[:4]] + [("input", "a0.h0<q>"), ("a1.h2", "m2")]
    for w, r in picks:
        patch = EdgePatch([(w, r)], source="corrupt", values=values)
        with torch.no_grad(), lens.apply(llama, patch):
            ref = _ld(llama(CORRUPT)) - base
        wi, ri = lay.writer_index(w), lay.reader_index(r)
        torch.testing.assert_close(g.per_pair[:, wi, ri], ref.float(), atol=1e-5, rtol=1e-4)
        assert g.score(w, r) == pytest.approx(float(ref.mean()), abs=1e-5, rel=1e-4)
    assert abs(g.ranked()[0][2]) > 1e-2
    assert lens.count_hooks(llama) == 0


@pytest.mark.parametrize(
    "kw",
    [dict(method="eap"), dict(method="eap-ig", steps=2),
     dict(method="eap-ig", steps=2, ig="activations")],
)  # fmt: skip
def test_per_pair_and_per_position_scores_sum_to_the_aggregate(llama, kw):
    g = attribute(llama, CLEAN, CORRUPT, answer=ANS, wrong=WRONG, per_pair=True,
                  per_position=True, batch_size=1, **kw)  # fmt: skip
    assert g.per_pair is not None and g.per_position is not None
    assert tuple(g.per_pair.shape) == (2, *g.scores.shape)
    assert tuple(g.per_position.shape) == (CLEAN.shape[1], *g.scores.shape)
    torch.testing.assert_close(g.per_pair.mean(0), g.scores, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(g.per_position.sum(0), g.scores, atol=1e-6, rtol=1e-5)
    assert (g.per_pair[0] - g.per_pair[1]).abs().max() > 1e-3  # pairs really differ
    # the corrupted token is at position 2 (pair 0) and 1 (pair 1): nothing differs before
    assert g.per_position[0].abs().max() == 0


def test_threshold_keeps_edges_at_or_above_it(llama):
    g = attribute(llama, CLEAN, CORRUPT, answer=ANS, wrong=WRONG, method="eap")
    t = sorted(abs(s) for *_, s in g.ranked())[-30]
    c = g.threshold(t)
    assert 0 < c.n_edges <= 30
    assert all(abs(g.score(w, r)) >= t for w, r in c.edges)
    assert torch.equal(c.mask, g.top(30).mask)
    with pytest.raises(ValueError, match=">= 0"):
        g.threshold(-1.0)


def test_ig_activations_input_edges_equal_input_ig(llama):
    """Interpolating the residual input (activations path, input group) and the embeddings
    (inputs path) move the same vector: edges out of ``input`` agree; other edges differ."""
    kw = dict(answer=ANS, wrong=WRONG, method="eap-ig", steps=3)
    a = attribute(llama, CLEAN, CORRUPT, ig="activations", **kw)
    i = attribute(llama, CLEAN, CORRUPT, ig="inputs", **kw)
    e = attribute(llama, CLEAN, CORRUPT, ig="activations", **{**kw, "steps": 1})
    eap = attribute(llama, CLEAN, CORRUPT, answer=ANS, wrong=WRONG, method="eap")
    torch.testing.assert_close(a.scores[0], i.scores[0], atol=1e-6, rtol=1e-4)
    assert (a.scores[1:] - i.scores[1:]).abs().max() > 1e-4
    torch.testing.assert_close(e.scores, eap.scores, atol=1e-6, rtol=1e-4)


def test_ig_activations_last_mlp_to_logits_by_hand(llama):
    """The edge m_last -> logits: the final-residual gradient with the last MLP's output
    moved alpha of the way from corrupt to clean, averaged over alphas, dotted with the
    MLP's clean - corrupt output."""
    steps, last = 4, llama.cfg.n_layers - 1
    g = attribute(llama, CLEAN, CORRUPT, answer=ANS, wrong=WRONG, method="eap-ig",
                  steps=steps, ig="activations")  # fmt: skip
    name = f"blocks.{last}.hook_mlp_out"
    outs = {}
    for toks, key in ((CLEAN, "c"), (CORRUPT, "x")):
        p = lens.Probe(name)
        with torch.no_grad(), lens.apply(llama, probes=[p]):
            llama(toks)
        outs[key] = p.value

    class Move:
        def __init__(self, alpha):
            self.alpha, self.final = alpha, None

        def hooks(self, model):
            def mlp(act, hook):
                return outs["x"] + self.alpha * (outs["c"] - outs["x"])

            def fin(act, hook):
                act.retain_grad()
                self.final = act
                return act

            return [(name, mlp), ("ln_final.hook_in", fin)]

    total = 0.0
    for k in range(steps):
        move = Move(k / steps)
        with torch.enable_grad(), lens.apply(llama, move):
            _ld(llama(CORRUPT)).sum().backward()
        total += float((move.final.grad * (outs["c"] - outs["x"])).sum()) / steps
    ref = total / len(ANS)
    assert abs(ref) > 1e-4
    assert g.score(f"m{last}", "logits") == pytest.approx(ref, abs=1e-6, rel=1e-4)


def test_named_metrics_equal_hand_written_callables(llama):
    def logprob(logits, batch):
        lp = logits[:, -1].log_softmax(-1)
        return lp[torch.arange(len(lp)), torch.tensor(ANS).repeat(len(lp) // 2)]

    a = attribute(llama, CLEAN, CORRUPT, answer=ANS, metric="logprob", method="eap")
    b = attribute(llama, CLEAN, CORRUPT, metric=logprob, method="eap")
    torch.testing.assert_close(a.scores, b.scores, atol=1e-6, rtol=1e-4)
    assert a.scores.abs().max() > 1e-3
    with torch.no_grad():
        clean_lp = llama(CLEAN)[:, -1].log_softmax(-1)

    def neg_kl(logits, batch):
        lq = logits[:, -1].log_softmax(-1)
        p = clean_lp.repeat(len(lq) // 2, 1)
        return -(p.exp() * (p - lq)).sum(-1)

    k1 = attribute(llama, CLEAN, CORRUPT, metric="kl", method="eap")
    k2 = attribute(llama, CLEAN, CORRUPT, metric=neg_kl, method="eap")
    torch.testing.assert_close(k1.scores, k2.scores, atol=1e-6, rtol=1e-4)
    full = k1.top(k1.n_edges)
    assert faithfulness(llama, full, CLEAN, CORRUPT, metric="kl") == pytest.approx(1.0, abs=1e-4)
    p = faithfulness(llama, k1.top(20), CLEAN, CORRUPT, answer=ANS, metric="prob")
    assert 0 < abs(p) < 100
    with pytest.raises(ValueError, match="metric must be"):
        attribute(llama, CLEAN, CORRUPT, answer=ANS, metric="accuracy")  # type: ignore[arg-type]


def test_mean_ablation_by_hand(llama):
    """Every edge into the logits set to the writers' means: the final residual is the sum
    of the mean writer outputs (a llama has no b_O)."""
    ref_prompts = [[1, 2, 3, 4], [9, 8, 7]]
    means = mean_writer_outputs(llama, ref_prompts)
    outs = [writer_outputs(llama, as_batch(llama, [p])) for p in ref_prompts]
    hand = torch.cat([o[0] for o in outs]).mean(0)
    torch.testing.assert_close(means[0, 0], hand, atol=1e-5, rtol=1e-5)
    lay = layout(llama)
    edges = [(w, "logits") for w in lay.writers]
    with torch.no_grad(), lens.apply(llama, EdgePatch(edges, source="mean", values=means)):
        got = llama(CLEAN)
    want = decode(llama, means[0, 0].sum(0)).expand_as(got)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    g = attribute(llama, CLEAN, CORRUPT, answer=ANS, wrong=WRONG, method="eap")
    kw = dict(answer=ANS, wrong=WRONG, ablation="mean", reference=ref_prompts)
    assert faithfulness(llama, g.top(g.n_edges), CLEAN, CORRUPT, **kw) == pytest.approx(1.0)
    curve = faithfulness_curve(llama, g, CLEAN, CORRUPT, sizes=[5, 50], **kw)
    assert curve.faithfulness[0] == pytest.approx(0.0, abs=1e-6)
    assert curve.empty_metric != pytest.approx(curve.clean_metric)
    with pytest.raises(ValueError, match="source='mean' needs values"):
        EdgePatch(edges, source="mean", values=means.repeat(2, 1, 1, 1))
