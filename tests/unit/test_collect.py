"""lens.collect: equals probe-based statistics, resumes exactly, rejects bad input cleanly."""

from __future__ import annotations

import pytest
import torch

import lens
from interventions import ActivationAddition
from lens.finders import average_precision_neurons, lape
from lens.stats import ActivationProbability, ExampleMeans, MomentStats, PositionMeans, labelled

GROUPS = ["a", "b"]


def corpus(n: int = 20, seed: int = 0) -> list[tuple[list[int], str]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(2, 9, (1,), generator=gen))
        out.append((torch.randint(3, 250, (length,), generator=gen).tolist(), GROUPS[i % 2]))
    return out


def accs_for(model) -> list:
    return [
        MomentStats.for_model(model, GROUPS),
        ActivationProbability.for_model(model, GROUPS),
        ExampleMeans.for_model(model, GROUPS, max_examples=64),
    ]


def test_collect_equals_one_by_one_probes(native_model):
    model, data = native_model, corpus()
    moments, prob, examples = accs_for(model)
    means = PositionMeans.for_model(model, GROUPS, n_positions=2)
    lens.collect(model, data, accumulators=[moments, prob, examples], batch_size=6, progress=False)
    lens.collect(model, data, accumulators=[means], batch_size=6, from_end=[-2, -1], progress=False)
    post = [f"blocks.{layer}.mlp.hook_post" for layer in range(3)]
    pre = [f"blocks.{layer}.mlp.hook_pre" for layer in range(3)]
    resid = [f"blocks.{layer}.hook_resid_pre" for layer in range(3)]
    captured: dict[str, list] = {g: [] for g in GROUPS}
    for tokens, g in data:  # independent path: unpadded single prompts, probes
        probes = [lens.Probe(n) for n in post + pre + resid]
        with torch.no_grad(), lens.apply(model, probes=probes):
            model(torch.tensor([tokens]))
        captured[g].append([p.value[0].double() for p in probes])
    for gi, g in enumerate(GROUPS):
        rows = captured[g]
        for s in range(3):
            x = torch.cat([r[s] for r in rows])
            assert int(moments.count[gi, s]) == x.shape[0]
            assert torch.allclose(moments.mean()[gi, s], x.mean(0), atol=1e-5)
            pre_x = torch.cat([r[3 + s] for r in rows])
            # an activation within float noise of 0 may flip sign between the two paths
            near_zero = int((pre_x.abs() < 1e-5).sum())
            assert (prob.active[gi, s] - (pre_x > 0).sum(0)).abs().sum() <= near_zero
            last2 = [r[6 + s][-2:] for r in rows if r[6 + s].shape[0] >= 2]
            last1 = [r[6 + s][-1] for r in rows]
            mean = means.mean()[gi, s]
            assert int(means.count[gi, s, 0]) == len(last2)
            assert torch.allclose(mean[0], torch.stack([v[0] for v in last2]).mean(0), atol=1e-5)
            assert torch.allclose(mean[1], torch.stack(last1).mean(0), atol=1e-5)
    ids, group, values = examples.sorted()
    assert ids.tolist() == list(range(len(data)))
    seen = {g: 0 for g in GROUPS}
    for i, (_, g) in enumerate(data):  # example i is the seen[g]-th prompt of its group
        assert GROUPS[int(group[i])] == g
        for s in range(3):
            assert torch.allclose(values[i, s], captured[g][seen[g]][s].mean(0), atol=1e-5)
        seen[g] += 1


def test_collect_sees_interventions():
    model = lens.load_model(lens.tiny_config("llama"))
    data, v = corpus(8), torch.randn(64)
    plain = PositionMeans.for_model(model, GROUPS, layers=[1])
    steered = PositionMeans.for_model(model, GROUPS, layers=[1])
    lens.collect(model, data, accumulators=[plain], positions="last", progress=False)
    add = ActivationAddition(v, layer=1)
    lens.collect(
        model, data, accumulators=[steered], positions="last", interventions=[add], progress=False
    )
    diff = steered.mean() - plain.mean()
    assert torch.allclose(diff, v.double().expand_as(diff), atol=1e-5)
    assert lens.count_hooks(model) == 0


class Boom(RuntimeError):
    pass


def failing(data, after: int):
    for i, item in enumerate(data):
        if i == after:
            raise Boom("simulated crash")
        yield item


def test_resume_after_crash_equals_uninterrupted(tmp_path):
    model = lens.load_model(lens.tiny_config("llama"))
    data = corpus(30)
    kw = dict(batch_size=4, progress=False)
    reference = accs_for(model)
    lens.collect(model, data, accumulators=reference, **kw)

    ckpt = tmp_path / "run.safetensors"
    crashed = accs_for(model)
    with pytest.raises(Boom):  # crash while reading the 6th batch (after 5 full batches)
        lens.collect(
            model,
            failing(data, 21),
            accumulators=crashed,
            checkpoint=ckpt,
            checkpoint_every=2,
            **kw,
        )
    meta = lens.stats.read_meta(ckpt)
    assert meta["examples_done"] == 16 and meta["batches_done"] == 4 and not meta["done"]
    assert lens.count_hooks(model) == 0
    # rerun with the same (dirty) accumulator objects: the checkpoint state replaces theirs
    res = lens.collect(model, data, accumulators=crashed, checkpoint=ckpt, checkpoint_every=2, **kw)
    assert res.resumed_examples == 16 and res.n_examples == 30 and res.n_batches == 8
    for a, b in zip(reference, crashed):
        for x, y in zip(a.state_dict().values(), b.state_dict().values()):
            assert torch.equal(x, y)
    assert lens.stats.read_meta(ckpt)["done"]
    again = accs_for(model)  # a finished checkpoint is simply loaded
    lens.collect(model, data, accumulators=again, checkpoint=ckpt, **kw)
    assert torch.equal(again[0].sum, reference[0].sum)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.safetensors"]


def test_resume_refuses_other_arguments(tmp_path):
    model = lens.load_model(lens.tiny_config("llama"))
    data, ckpt = corpus(12), tmp_path / "run.safetensors"
    lens.collect(
        model, data, accumulators=accs_for(model), batch_size=4, checkpoint=ckpt, progress=False
    )
    with pytest.raises(ValueError, match="batch_size"):
        lens.collect(
            model, data, accumulators=accs_for(model), batch_size=3, checkpoint=ckpt, progress=False
        )
    other = [(t[::-1], g) for t, g in data]
    with pytest.raises(ValueError, match="differ"):
        lens.collect(
            model,
            other,
            accumulators=accs_for(model),
            batch_size=4,
            checkpoint=ckpt,
            progress=False,
        )
    with torch.no_grad():
        model.blocks[0].mlp.out.original_component.weight[0, 0] += 1.0
    with pytest.raises(ValueError, match="model"):
        lens.collect(
            model, data, accumulators=accs_for(model), batch_size=4, checkpoint=ckpt, progress=False
        )


def untouched(accs) -> bool:
    return all(
        not any(bool(t.ne(0).any()) for k, t in a.state_dict().items() if k not in ("ids", "group"))
        for a in accs
    )


def test_bad_input_gives_clear_errors():
    model = lens.load_model(lens.tiny_config("llama"))
    accs = accs_for(model)
    with pytest.raises(ValueError, match="corpus is empty"):
        lens.collect(model, [], accumulators=accs, progress=False)
    with pytest.raises(ValueError, match="corpus is empty"):
        lens.collect(model, iter([]), accumulators=accs, progress=False)
    with pytest.raises(ValueError, match="1 labels for 2 items"):
        labelled([[1, 2], [3]], ["a"])
    with pytest.raises(ValueError, match="3 labels for 2 items"):
        average_precision_neurons(model, [[1, 2], [3]], ["a", "b", "a"], progress=False)
    with pytest.raises(ValueError, match="not groups"):
        lens.collect(model, [([1, 2], "a"), ([3], "zz")], accumulators=accs, progress=False)
    with pytest.raises(ValueError, match="has no tokens"):
        lens.collect(model, [([1, 2], "a"), ([], "b")], accumulators=accs, progress=False)
    with pytest.raises(ValueError, match="not a \\(text or tokens, label\\) pair"):
        lens.collect(model, [[1, 2, 3]], accumulators=accs, progress=False)
    lacking = MomentStats(["blocks.7.mlp.hook_post"], 128, GROUPS)
    with pytest.raises(ValueError, match="lacks"):
        lens.collect(model, corpus(4), accumulators=[lacking], progress=False)
    with pytest.raises(ValueError, match="out of range"):
        MomentStats.for_model(model, GROUPS, layers=[7])
    with pytest.raises(ValueError, match="site must be one of"):
        MomentStats.for_model(model, GROUPS, site="mlp_nope")
    with pytest.raises(ValueError, match="write 'mlp_post'"):
        MomentStats.for_model(model, GROUPS, site="mlp.hook_post")
    with pytest.raises(ValueError, match="n_positions"):
        lens.collect(
            model,
            corpus(4),
            accumulators=[PositionMeans.for_model(model, GROUPS)],
            from_end=[-2, -1],
            progress=False,
        )
    assert untouched(accs) and lens.count_hooks(model) == 0

    # a group that got no tokens: the finders say which
    only_a = ActivationProbability.for_model(model, GROUPS)
    lens.collect(model, [([1, 2, 3], "a")], accumulators=[only_a], progress=False)
    with pytest.raises(ValueError, match=r"\['b'\] have no tokens"):
        lape(only_a)
    with pytest.raises(ValueError, match="no tokens"):
        only_a.probability()
