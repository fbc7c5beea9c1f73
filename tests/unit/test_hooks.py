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
    with lens.apply(native_model, interventions=[Recorder(every_layer(native_model))]) as handle:
        assert handle.n_hooks == native_model.cfg.n_layers
        assert count_hooks(native_model) > before
        native_model(tokens)
    assert count_hooks(native_model) == before
    assert torch_hook_total(native_model) == before_torch


def test_plain_call_returns_removable_handle(native_model, tokens):
    clean = native_model(tokens)
    handle = lens.apply(
        native_model, interventions=[Recorder(every_layer(native_model), scale=2.0)]
    )
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
        with lens.apply(
            native_model, interventions=[Recorder(every_layer(native_model), raise_at=raise_at)]
        ):
            native_model(tokens)
    assert count_hooks(native_model) == before
    fired.clear()
    native_model(tokens)
    assert fired == [1], "the user's pre-existing hook must still fire"
    user_hook.hook.remove()


def test_keyboard_interrupt_inside_block(native_model, tokens):
    before = count_hooks(native_model)
    with pytest.raises(KeyboardInterrupt):
        with lens.apply(native_model, interventions=[Recorder(every_layer(native_model))]):
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
        lens.apply(native_model, interventions=[Recorder(every_layer(native_model))])
    monkeypatch.setattr(HookPoint, "add_hook", real_add)
    assert calls["n"] == 3
    assert count_hooks(native_model) == before


def test_intervention_that_fails_to_compile_installs_nothing(native_model):
    class Bad:
        def hooks(self, model):
            raise ValueError("does not fit this model")

    before = count_hooks(native_model)
    with pytest.raises(ValueError, match="does not fit"):
        lens.apply(native_model, interventions=[Recorder(every_layer(native_model)), Bad()])
    assert count_hooks(native_model) == before


def test_unknown_name_lists_closest_and_installs_nothing(native_model):
    before = count_hooks(native_model)
    names = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_pots"]
    with pytest.raises(KeyError, match="blocks.1.hook_resid_post"):
        lens.apply(native_model, interventions=[Recorder(names)])
    assert count_hooks(native_model) == before


def test_not_an_intervention_is_a_type_error(native_model):
    with pytest.raises(TypeError, match="not an intervention"):
        lens.apply(native_model, interventions=[object()])


def test_interventions_are_passed_one_way_as_a_list(native_model):
    one = Recorder(every_layer(native_model))
    before = count_hooks(native_model)
    with pytest.raises(TypeError, match=r"interventions=\[x\]"):
        lens.apply(native_model, interventions=one)  # a bare intervention, not a list
    with pytest.raises(TypeError):
        lens.apply(native_model, one)  # type: ignore[misc]  # positional: keyword-only now
    assert count_hooks(native_model) == before


def test_nesting_inner_exit_keeps_outer(native_model, tokens):
    log = []
    outer = Recorder(["blocks.0.hook_resid_post"], log=log, tag="outer")
    inner = Recorder(["blocks.0.hook_resid_post"], log=log, tag="inner")
    with lens.apply(native_model, interventions=[outer]):
        with lens.apply(native_model, interventions=[inner]):
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
    with lens.apply(native_model, interventions=[add, mul], probes=[probe_ab]):
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
