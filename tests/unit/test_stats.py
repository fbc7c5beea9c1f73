"""Accumulators: merge over split data == one pass, save/load, constant size, positions."""

from __future__ import annotations

import pytest
import torch

import lens
from lens.stats import (
    ActivationProbability,
    ExampleMeans,
    MomentStats,
    PositionMeans,
    load_states,
    read_meta,
    save_checkpoint,
)
from lens.stats.select import SlotSpec, normalize_positions, plan

SITES = ["s0", "s1"]
GROUPS = ["a", "b", "c"]
W = 5


def make_accs(slots: int = 1) -> list:
    return [
        MomentStats(SITES, W, GROUPS),
        ActivationProbability(SITES, W, GROUPS),
        PositionMeans(SITES, W, GROUPS, n_positions=slots),
        ExampleMeans(SITES, W, GROUPS, max_examples=64),
    ]


def random_batches(n: int, seed: int = 0, slots: int | None = None):
    """Synthetic batches: (group idx, example ids, per-site values, valid)."""
    gen = torch.Generator().manual_seed(seed)
    out, next_id = [], 0
    for _ in range(n):
        b = int(torch.randint(2, 5, (1,), generator=gen))
        t = slots or int(torch.randint(1, 6, (1,), generator=gen))
        groups = torch.randint(len(GROUPS), (b,), generator=gen)
        ids = torch.arange(next_id, next_id + b)
        next_id += b
        values = [torch.randn(b, t, W, generator=gen) for _ in SITES]
        valid = torch.rand(b, t, generator=gen) > 0.3
        valid[:, -1] = True  # every example has a token
        out.append((groups, ids, values, valid))
    return out


def feed(accs, batches, pooled=True):
    for groups, ids, values, valid in batches:
        for acc in accs:
            acc.begin_batch(groups, ids)
            for s, v in enumerate(values):
                acc.update(s, v, valid, pooled)


def assert_same(a, b, tol=1e-12):
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert x.shape == y.shape, k
        if x.is_floating_point():
            assert torch.allclose(x, y, rtol=0, atol=tol), (k, (x - y).abs().max())
        else:
            assert torch.equal(x, y), k


@pytest.mark.parametrize("pooled", [True, False])
def test_merge_of_split_data_equals_one_pass(pooled):
    batches = random_batches(9, slots=None if pooled else 3)
    slots = 1 if pooled else 3
    whole, first, second = make_accs(slots), make_accs(slots), make_accs(slots)
    feed(whole, batches, pooled)
    feed(first, batches[:4], pooled)
    feed(second, batches[4:], pooled)
    for w, a, b in zip(whole, second, first):  # merged in the other order on purpose
        assert_same(w, a.merge(b))


def test_one_pass_matches_independent_sums():
    batches = random_batches(6)
    moments, prob, means, examples = make_accs()
    feed([moments, prob, means, examples], batches)
    for s in range(len(SITES)):
        for g in range(len(GROUPS)):
            rows = [
                v[s][i][valid[i]].double()
                for groups, _, v, valid in batches
                for i in range(len(groups))
                if groups[i] == g
            ]
            x = torch.cat(rows)
            assert int(moments.count[g, s]) == x.shape[0]
            assert torch.allclose(moments.sum[g, s], x.sum(0), atol=1e-12, rtol=0)
            assert torch.allclose(moments.sumsq[g, s], (x * x).sum(0), atol=1e-12, rtol=0)
            assert torch.equal(prob.active[g, s], (x > 0).sum(0))
            assert torch.allclose(means.mean()[g, s, 0], x.mean(0), atol=1e-12, rtol=0)
            assert torch.allclose(moments.var()[g, s], x.var(0, unbiased=False), atol=1e-12)
    ids, group, values = examples.sorted()
    i = 0
    for groups, _, v, valid in batches:
        for r in range(len(groups)):
            for s in range(len(SITES)):
                expect = v[s][r][valid[r]].double().mean(0)
                assert torch.allclose(values[i, s], expect, atol=1e-12, rtol=0)
            assert int(group[i]) == int(groups[r]) and int(ids[i]) == i
            i += 1


def test_save_load_round_trip(tmp_path):
    accs = make_accs()
    feed(accs, random_batches(4))
    path = tmp_path / "state.safetensors"
    save_checkpoint(path, accs, {"note": "x"})
    assert read_meta(path)["note"] == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["state.safetensors"]  # no temp file left
    fresh = make_accs()
    load_states(path, fresh)
    for a, b in zip(accs, fresh):
        assert_same(a, b, tol=0.0)
    # state_dict / load_state_dict directly, and shape checks
    fresh[0].load_state_dict(accs[0].state_dict())
    assert_same(accs[0], fresh[0], tol=0.0)
    with pytest.raises(ValueError, match="expected"):
        MomentStats(SITES, W + 1, GROUPS).load_state_dict(accs[0].state_dict())
    with pytest.raises(ValueError, match="holds accumulators"):
        load_states(path, [MomentStats(SITES, W, ["x", "y"])])


def test_merge_refuses_other_layouts():
    with pytest.raises(ValueError, match="cannot combine"):
        MomentStats(SITES, W, GROUPS).merge(MomentStats(SITES, W, ["x"]))
    with pytest.raises(ValueError, match="cannot combine"):
        MomentStats(SITES, W, GROUPS).merge(ActivationProbability(SITES, W, GROUPS))


def test_example_means_cap_is_explicit():
    acc = ExampleMeans(SITES, W, GROUPS, max_examples=3)
    acc.begin_batch(torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="max_examples=3"):
        acc.begin_batch(torch.tensor([0, 1]), torch.tensor([2, 3]))


def test_sizes_flat_in_number_of_batches():
    model = lens.load_model(lens.tiny_config("llama"))
    sizes = []
    for n_batches in (2, 8):
        corpus = [([1 + i % 50, 2, 3, 4 + i % 7], "ab"[i % 2]) for i in range(4 * n_batches)]
        accs = [
            MomentStats.for_model(model, ["a", "b"]),
            ActivationProbability.for_model(model, ["a", "b"]),
            PositionMeans.for_model(model, ["a", "b"], n_positions=2),
            ExampleMeans.for_model(model, ["a", "b"], max_examples=40),
        ]
        lens.collect(model, corpus, accumulators=accs[:2], batch_size=4, progress=False)
        lens.collect(
            model, corpus, accumulators=accs[2:3], batch_size=4, from_end=[-2, -1], progress=False
        )
        lens.collect(model, corpus, accumulators=accs[3:], batch_size=4, progress=False)
        assert accs[0].count.sum() == 3 * 4 * len(corpus)  # every token counted, per site
        sizes.append([(a.n_elements, [t.shape for t in a.state_dict().values()]) for a in accs])
    assert sizes[0] == sizes[1]


def test_positions_plan_is_mask_aware():
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    for mask in (left, right):
        sel = plan(mask, normalize_positions(None, from_end=(-3, -2, -1)))
        assert sel.valid.tolist() == [[False, True, True], [True, True, True]]
        act = torch.arange(8.0).view(2, 4, 1)
        got = sel.take(act)[..., 0]
        real = [act[0, mask[0].bool(), 0].tolist(), act[1, :, 0].tolist()]
        assert got[0, 1:].tolist() == real[0][-2:] and got[1].tolist() == real[1][-3:]
    assert normalize_positions("last") == SlotSpec("from_end", (-1,))
    for bad in ([0], [1, -1], [], [-1, -1]):
        with pytest.raises(ValueError):
            normalize_positions(None, from_end=bad)
    for bad in ("first", [], [1, 1], [0, -1], torch.tensor([0, 1])):
        with pytest.raises(ValueError):
            normalize_positions(bad)
    with pytest.raises(ValueError, match="not both"):
        normalize_positions([0], from_end=[-1])


def test_positions_columns_plan_reads_padded_columns():
    """Integer positions are padded-batch columns (negative from the padded end), the same
    meaning as lens.apply / Probe; columns on padding or outside the batch are invalid."""
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    sel = plan(right, normalize_positions([3, 0, 7]))  # slots in increasing column order
    assert sel.index[:, :2].tolist() == [[0, 3], [0, 3]]
    assert sel.valid.tolist() == [[True, False, False], [True, True, False]]
    sel = plan(right, normalize_positions([-1, -4]))
    assert sel.index.tolist() == [[0, 3], [0, 3]]
