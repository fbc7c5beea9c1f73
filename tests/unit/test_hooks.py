"""Hook manager: leak-proof installation, ordering, nesting, probes, fault injection."""

from __future__ import annotations

import pytest
import torch

import lens
from lens.hooks import count_hooks


class Recorder:
    """A test intervention: one hook per name, each optionally raising when called."""

    def __init__(self, names, raise_at=None, scale=1.0, log=None, tag=""):
        self.names, self.raise_at, self.scale = list(names), raise_at, scale
        self.log = log if log is not None else []
        self.tag = tag

    def hooks(self, model):
        pairs = []
        for i, name in enumerate(self.names):

            def fn(act, hook, i=i, name=name):
                self.log.append((self.tag, name))
                if i == self.raise_at:
                    raise RuntimeError(f"boom in hook {i}")
                return act * self.scale

            pairs.append((name, fn))
        return pairs


def every_layer(model, site="hook_resid_post"):
    return [f"blocks.{layer}.{site}" for layer in range(model.cfg.n_layers)]


def torch_hook_total(model):
    unique = {id(hp): hp for hp in model.hook_dict.values()}.values()
    return sum(len(hp._forward_hooks) for hp in unique) + len(model._forward_pre_hooks)


@pytest.fixture
def tokens():
    return torch.randint(0, 200, (2, 6), generator=torch.Generator().manual_seed(0))


def test_context_manager_removes_exactly_its_hooks(native_model, tokens):
    before, before_torch = count_hooks(native_model), torch_hook_total(native_model)
    with lens.apply(native_model, Recorder(every_layer(native_model))) as handle:
        assert handle.n_hooks == native_model.cfg.n_layers
        assert count_hooks(native_model) > before
        native_model(tokens)
    assert count_hooks(native_model) == before
    assert torch_hook_total(native_model) == before_torch


def test_plain_call_returns_removable_handle(native_model, tokens):
    clean = native_model(tokens)
    handle = lens.apply(native_model, Recorder(every_layer(native_model), scale=2.0))
    assert not torch.allclose(native_model(tokens), clean)
    handle.remove()
    handle.remove()  # idempotent
    torch.testing.assert_close(native_model(tokens), clean, rtol=0, atol=0)


@pytest.mark.parametrize("raise_at", [0, 1, 2])
def test_exception_inside_each_hook_leaves_no_hook(native_model, tokens, raise_at):
    fired = []
    user_hook = native_model.hook_dict["blocks.0.hook_out"].add_hook(
        lambda act, hook: fired.append(1)
    )
    before = count_hooks(native_model)
    with pytest.raises(RuntimeError, match=f"boom in hook {raise_at}"):
        with lens.apply(native_model, Recorder(every_layer(native_model), raise_at=raise_at)):
            native_model(tokens)
    assert count_hooks(native_model) == before
    fired.clear()
    native_model(tokens)
    assert fired == [1], "the user's pre-existing hook must still fire"
    user_hook.hook.remove()


def test_keyboard_interrupt_inside_block(native_model, tokens):
    before = count_hooks(native_model)
    with pytest.raises(KeyboardInterrupt):
        with lens.apply(native_model, Recorder(every_layer(native_model))):
            raise KeyboardInterrupt
    assert count_hooks(native_model) == before


def test_failure_during_installation_rolls_back(native_model, monkeypatch, tokens):
    """The third add_hook call fails: the two already installed are removed."""
    from transformer_lens.hook_points import HookPoint

    real_add = HookPoint.add_hook
    calls = {"n": 0}

    def flaky_add(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("install failed")
        return real_add(self, *args, **kwargs)

    before = count_hooks(native_model)
    monkeypatch.setattr(HookPoint, "add_hook", flaky_add)
    with pytest.raises(RuntimeError, match="install failed"):
        lens.apply(native_model, Recorder(every_layer(native_model)))
    monkeypatch.setattr(HookPoint, "add_hook", real_add)
    assert calls["n"] == 3
    assert count_hooks(native_model) == before


def test_intervention_that_fails_to_compile_installs_nothing(native_model):
    class Bad:
        def hooks(self, model):
            raise ValueError("does not fit this model")

    before = count_hooks(native_model)
    with pytest.raises(ValueError, match="does not fit"):
        lens.apply(native_model, Recorder(every_layer(native_model)), Bad())
    assert count_hooks(native_model) == before


def test_unknown_name_lists_closest_and_installs_nothing(native_model):
    before = count_hooks(native_model)
    names = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_pots"]
    with pytest.raises(KeyError, match="blocks.1.hook_resid_post"):
        lens.apply(native_model, Recorder(names))
    assert count_hooks(native_model) == before


def test_not_an_intervention_is_a_type_error(native_model):
    with pytest.raises(TypeError, match="not an intervention"):
        lens.apply(native_model, object())


def test_apply_takes_interventions_positionally(native_model, tokens):
    """lens.apply is the one API that takes interventions positionally (the public contract);
    a list, or interventions= as elsewhere, is refused with no hook left."""
    one = Recorder(every_layer(native_model))
    before = count_hooks(native_model)
    with pytest.raises(TypeError, match="not an intervention"):
        lens.apply(native_model, [one])
    with pytest.raises(TypeError):
        lens.apply(native_model, interventions=[one])  # type: ignore[call-arg]
    assert count_hooks(native_model) == before
    with lens.apply(native_model, one):
        native_model(tokens)
    assert one.log and count_hooks(native_model) == before


def test_nesting_inner_exit_keeps_outer(native_model, tokens):
    log = []
    outer = Recorder(["blocks.0.hook_resid_post"], log=log, tag="outer")
    inner = Recorder(["blocks.0.hook_resid_post"], log=log, tag="inner")
    with lens.apply(native_model, outer):
        with lens.apply(native_model, inner):
            native_model(tokens)
        assert log == [("outer", "blocks.0.hook_resid_post"), ("inner", "blocks.0.hook_resid_post")]
        log.clear()
        native_model(tokens)
        assert log == [("outer", "blocks.0.hook_resid_post")]
    log.clear()
    native_model(tokens)
    assert log == []


def test_order_on_shared_hook_point(native_model, tokens):
    """Two interventions on one point run in the given order: (x+1)*2 != x*2+1."""
    name = "blocks.1.hook_resid_post"

    class Affine:
        def __init__(self, op):
            self.op = op

        def hooks(self, model):
            return [(name, lambda act, hook: self.op(act))]

    probe_ab = lens.Probe("blocks.2.hook_resid_pre")
    add, mul = Affine(lambda x: x + 1), Affine(lambda x: x * 2)
    clean = lens.Probe(name)
    with lens.apply(native_model, probes=[clean]):
        native_model(tokens)
    with lens.apply(native_model, add, mul, probes=[probe_ab]):
        native_model(tokens)
    torch.testing.assert_close(probe_ab.value, (clean.value + 1) * 2, rtol=0, atol=1e-6)


def test_probes_capture_positions(native_model):
    b = lens.tokens.batch(native_model, [[5, 6, 7, 8], [9, 10]], padding_side="right")
    full = lens.Probe("blocks.1.hook_resid_post")
    last = lens.Probe("blocks.1.hook_resid_post", positions="last", to_cpu=True)
    some = lens.Probe("blocks.1.hook_resid_post", positions=[0, 1])
    with lens.apply(native_model, probes=[full, last, some]):
        native_model(b.tokens, attention_mask=b.attention_mask)
    rows = torch.arange(2)
    torch.testing.assert_close(last.value, full.value[rows, torch.tensor([3, 1])])
    torch.testing.assert_close(some.value, full.value[:, :2])
    assert not last.value.requires_grad and last.value.device.type == "cpu"


def test_probe_before_any_forward_raises():
    with pytest.raises(RuntimeError, match="captured nothing"):
        _ = lens.Probe("blocks.0.hook_resid_post").value


def test_apply_with_nothing_is_identity(hf_model):
    tokens = torch.randint(3, 500, (2, 7), generator=torch.Generator().manual_seed(1))
    clean = hf_model(tokens)
    with lens.apply(hf_model):
        torch.testing.assert_close(hf_model(tokens), clean, rtol=0, atol=0)


# ---------------------------------------------------------------- cached hook resolution


def manual_capture(model, name, tokens):
    """Reference: the activation at ``name`` read with a plain TransformerLens hook, the
    HookPoint looked up afresh in ``model.hook_dict`` (no lens cache involved)."""
    from interventions import bridge

    canonical = bridge.alias_map(model).get(name, name)
    seen = []
    handle = model.hook_dict[canonical].add_hook(lambda act, hook: seen.append(act.detach()))
    model(tokens)
    handle.hook.remove()
    model.hook_dict[canonical].fwd_hooks[:] = []
    return seen[-1]


def test_cached_resolution_follows_user_hooks_and_models(tokens):
    """Same captures as an uncached lookup while a user hook comes and goes, on a second
    model of the same config (a reload) and on a model with other weights; nothing leaks."""
    from lens.hooks import resolve_hook

    name = "blocks.1.hook_resid_post"
    first = lens.load_model(lens.tiny_config("llama"))
    other = lens.load_model(lens.tiny_config("llama", seed=1))
    before = {id(m): (count_hooks(m), torch_hook_total(m)) for m in (first, other)}
    for model in (first, first, other):  # the second pass uses the cached names
        fired = []
        for user_hook in (False, True, False):
            extra = None
            if user_hook:  # a user's own hook on the same point, scaling its output
                extra = model.hook_dict["blocks.1.hook_out"].add_hook(lambda a, hook: 2 * a)
            probe = lens.Probe(name)
            with lens.apply(model, probes=[probe]):
                model(tokens)
            fired.append(probe.value)
            if extra is not None:
                extra.hook.remove()
                model.hook_dict["blocks.1.hook_out"].fwd_hooks.remove(extra)
        ref = manual_capture(model, name, tokens)
        torch.testing.assert_close(fired[0], ref, rtol=0, atol=0)
        torch.testing.assert_close(fired[1], 2 * ref, rtol=0, atol=0)  # the user hook ran first
        torch.testing.assert_close(fired[2], ref, rtol=0, atol=0)
    assert resolve_hook(first, name) is not resolve_hook(other, name)
    assert not torch.allclose(
        manual_capture(first, name, tokens), manual_capture(other, name, tokens)
    )
    reloaded = lens.load_model(lens.tiny_config("llama"))  # same config and seed: a reload
    assert resolve_hook(reloaded, name) is reloaded.hook_dict["blocks.1.hook_out"]
    assert resolve_hook(reloaded, name) is not resolve_hook(first, name)
    for m in (first, other):
        assert (count_hooks(m), torch_hook_total(m)) == before[id(m)]


def test_cached_resolution_is_revalidated_when_the_registry_changes(native_model):
    """A HookPoint re-registered under a cached name is picked up, as a fresh TransformerLens
    lookup (``model.hook_dict`` through its alias map) finds it; the stale one is not used."""
    from transformer_lens.hook_points import HookPoint

    from interventions import bridge
    from lens.hooks import resolve_hook

    def uncached(name):
        return native_model.hook_dict[bridge.alias_map(native_model).get(name) or name]

    names = ["blocks.1.hook_out", "blocks.1.hook_resid_post", "blocks.0.hook_resid_post"]
    old = resolve_hook(native_model, "blocks.1.hook_out")
    assert [resolve_hook(native_model, n) for n in names] == [uncached(n) for n in names]
    fresh = HookPoint()
    native_model._hook_registry["blocks.1.hook_out"] = fresh
    try:
        assert resolve_hook(native_model, "blocks.1.hook_out") is fresh
        for n in names:
            assert resolve_hook(native_model, n) is uncached(n)
    finally:
        native_model._hook_registry["blocks.1.hook_out"] = old
    assert resolve_hook(native_model, "blocks.1.hook_out") is old


# ---------------------------------------------------------------- one context per forward


def test_forward_inside_a_hook_keeps_the_outer_mask(native_model):
    """A hook of the outer forward runs another forward (under a nested apply) with a
    different mask: the outer 'last' positions still come from the outer mask."""
    from interventions import ActivationAddition
    from interventions.base import _STACKS

    outer = lens.tokens.batch(native_model, [[5, 6, 7, 8, 9], [10, 11]], padding_side="right")
    inner = lens.tokens.batch(native_model, [[12, 13], [14, 15, 16, 17, 18]], padding_side="right")
    name = "blocks.2.hook_resid_pre"
    with lens.apply(native_model, probes=[everything := lens.Probe(name)]):
        native_model(outer.tokens, attention_mask=outer.attention_mask)
    rows = torch.arange(2)
    ref = everything.value[rows, torch.tensor([4, 1])]  # outer last real tokens, by hand
    inner_probe, ran = lens.Probe(name, positions="last"), []

    class RunsAForward:
        """At block 0 of the outer forward, run the inner batch once under its own apply."""

        def hooks(self, model):
            def run_inner(act, hook):
                if not ran:  # once: the inner forward fires this hook too
                    ran.append(True)
                    with lens.apply(model, probes=[inner_probe]):
                        model(inner.tokens, attention_mask=inner.attention_mask)
                return None

            return [("blocks.0.hook_resid_post", run_inner)]

    probe = lens.Probe(name, positions="last")
    direction = torch.randn(native_model.cfg.d_model, generator=torch.Generator().manual_seed(3))
    add = ActivationAddition(direction, 1, positions="last")
    with lens.apply(native_model, RunsAForward(), add, probes=[probe]):
        native_model(outer.tokens, attention_mask=outer.attention_mask)
    assert len(inner_probe.values) == 1
    assert not torch.allclose(probe.value, ref)  # the addition reached the outer last tokens
    with lens.apply(native_model, add, probes=[check := lens.Probe(name, positions="last")]):
        native_model(outer.tokens, attention_mask=outer.attention_mask)
    torch.testing.assert_close(probe.value, check.value, rtol=0, atol=1e-6)  # as alone
    with lens.apply(native_model, add, probes=[everything]):  # the inner forward ran under it
        native_model(inner.tokens, attention_mask=inner.attention_mask)
    torch.testing.assert_close(
        inner_probe.value, everything.value[rows, torch.tensor([1, 4])], rtol=0, atol=0
    )
    assert not _STACKS.get(native_model), "every forward context was popped"


def test_forward_context_is_popped_when_the_forward_raises(native_model, tokens):
    from interventions.base import _STACKS, forward_context

    with pytest.raises(RuntimeError, match="boom in hook 0"):
        with lens.apply(native_model, Recorder(["blocks.1.hook_resid_post"], raise_at=0)):
            native_model(tokens, attention_mask=torch.ones_like(tokens))
    assert not _STACKS.get(native_model)
    assert forward_context(native_model).attention_mask is None


def test_positional_attention_mask_is_recorded(native_model):
    """model(tokens, return_type, loss_per_token, prepend_bos, padding_side, mask)."""
    b = lens.tokens.batch(native_model, [[5, 6, 7], [8]], padding_side="right")
    by_keyword, positional = (
        lens.Probe("blocks.1.hook_resid_post", positions="last") for _ in "ab"
    )
    with lens.apply(native_model, probes=[by_keyword]):
        native_model(b.tokens, attention_mask=b.attention_mask)
    with lens.apply(native_model, probes=[positional]):
        native_model(b.tokens, "logits", False, None, None, b.attention_mask)
    torch.testing.assert_close(positional.value, by_keyword.value, rtol=0, atol=0)


# ---------------------------------------------------------------- stop_early under an outer apply


@pytest.mark.parametrize(
    ("site", "layer", "outer_names"),
    [
        ("resid_post", 0, ["blocks.2.hook_resid_post", "ln_final.hook_normalized"]),
        ("resid_pre", 1, ["blocks.1.mlp.hook_post"]),  # same block, after the decoded site
    ],
)
def test_logit_lens_stop_early_keeps_an_outer_apply_s_later_probes(
    native_model, site, layer, outer_names
):
    """stop_early must not skip an outer apply's probes after the decoded site: the forward
    then runs to the end; the decoded numbers are those of a full forward."""
    b = lens.tokens.batch(native_model, [[5, 6, 7], [8, 9]], padding_side="left")
    refs = [lens.Probe(n) for n in outer_names]
    with lens.apply(native_model, probes=refs):
        native_model(b.tokens, attention_mask=b.attention_mask)
    outer = [lens.Probe(n) for n in outer_names]
    with lens.apply(native_model, probes=outer):
        res = lens.logit_lens(native_model, b, layers=[layer], site=site, stop_early=True)
    for probe, ref in zip(outer, refs, strict=True):
        assert len(probe.values) == 1
        torch.testing.assert_close(probe.value, ref.value, rtol=0, atol=0)
    full = lens.logit_lens(native_model, b, layers=[layer], site=site, stop_early=False)
    assert (res.top_ids == full.top_ids).all()
    torch.testing.assert_close(torch.as_tensor(res.top_probs), torch.as_tensor(full.top_probs))

    class Counts:  # an intervention given to logit_lens itself, after the decoded site
        def hooks(self, model):
            return [(outer_names[0], lambda act, hook: calls.append(hook.name))]

    calls: list[str] = []
    lens.logit_lens(native_model, b, layers=[layer], site=site, interventions=[Counts()])
    assert calls == [], "without an outer hook after it, the forward still stops early"
    with lens.apply(native_model, probes=[lens.Probe(outer_names[-1])]):
        lens.logit_lens(native_model, b, layers=[layer], site=site, interventions=[Counts()])
    assert len(calls) == 1
