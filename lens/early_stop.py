"""The one early-stop mechanism: a probe that ends the forward right after its capture, run
with :func:`forward_until`, which lets the forward run to the end whenever a hook the caller did
not install sits later (so no one else's hook is ever skipped). Used by the logit lens and the
linear shortcuts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from lens.hooks import HookHandle, Probe


class StopForward(Exception):
    """Raised by a :class:`StoppingProbe` once it has captured: nothing after it is needed."""


class StoppingProbe(Probe):
    """A probe that ends the forward right after its capture (while ``active``); run the
    forward with :func:`forward_until`, the one early-stop mechanism of lens."""

    active: bool = True

    def hook(self, model: Any) -> Any:
        capture = super().hook(model)

        def capture_then_stop(act: Tensor, hook: Any) -> None:
            capture(act, hook)
            if self.active:
                raise StopForward

        return capture_then_stop


def forward_until(
    model: Any,
    stopper: StoppingProbe | None,
    later: Iterable[Any],
    handle: HookHandle,
    *args: Any,
    **kwargs: Any,
) -> None:
    """``model(*args, **kwargs)``, ended right after ``stopper``'s capture unless a hook that
    ``handle`` did not install sits on one of the ``later`` hook points (an outer ``apply``'s
    probe, a user's hook): then the forward runs to the end, so no one else's hook is skipped.

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> stop = StoppingProbe("blocks.0.hook_resid_post")
        >>> later = lens.hooks.hook_points_after(model, 0, same_block=False)
        >>> with lens.apply(model, probes=[stop]) as handle:
        ...     forward_until(model, stop, later, handle, torch.tensor([[1, 2, 3]]))
        >>> tuple(stop.value.shape)
        (1, 3, 64)
    """
    if stopper is not None:
        stopper.active = not handle.others_hooked(later)
    try:
        model(*args, **kwargs)
    except StopForward:
        pass
