"""NeuronDeactivation: set chosen MLP neurons to zero, a constant, or per-neuron values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from interventions._common import (
    as_layer,
    as_vector,
    at_positions,
    finite_float,
    positions_from_json,
    positions_to_json,
    tensor_from_json,
    tensor_to_json,
)
from interventions.base import (
    HookPair,
    Positions,
    register,
    validate_positions,
)
from interventions.sites import NEURON_SITES, NeuronSite, check_site, hook_name, resolve_layers


def neurons_by_layer(pairs: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """``[(layer, neuron), ...]`` -> ``{layer: [neurons]}`` (order of first appearance kept).

    Example:
        >>> neurons_by_layer([(2, 7), (0, 1), (2, 3)])
        {2: [7, 3], 0: [1]}
    """
    out: dict[int, list[int]] = {}
    for layer, neuron in pairs:
        out.setdefault(int(layer), []).append(int(neuron))
    return out


def _as_neurons(neurons: Any) -> dict[int, list[int]]:
    """{layer: [indices]} or [(layer, index)] -> sorted {layer: [indices]}, validated."""
    if isinstance(neurons, Mapping):
        items = [(as_layer(k, "neuron layer", from_end=True), v) for k, v in neurons.items()]
        out: dict[int, list[int]] = {}
        for layer, idx in items:
            if isinstance(idx, Tensor):
                idx = idx.tolist()
            if isinstance(idx, int):
                idx = [idx]
            out[layer] = [as_layer(i, f"neuron index at layer {layer}") for i in idx]
    elif isinstance(neurons, (str, bytes)) or not isinstance(neurons, Sequence | Tensor):
        raise TypeError("neurons must be {layer: [indices]} or [(layer, index), ...]")
    else:
        checked = []
        for pair in neurons.tolist() if isinstance(neurons, Tensor) else neurons:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"neurons list items must be (layer, index) pairs, got {pair!r}")
            layer = as_layer(pair[0], "neuron layer", from_end=True)
            checked.append((layer, as_layer(pair[1], f"neuron index at layer {layer}")))
        out = neurons_by_layer(checked)
    if not out or not any(out.values()):
        raise ValueError("neurons is empty: nothing would be deactivated")
    for layer, idx in out.items():
        if not idx:
            raise ValueError(f"neurons[{layer}] is empty")
        if len(set(idx)) != len(idx):
            raise ValueError(f"neurons[{layer}] has duplicate indices: {idx}")
    return dict(sorted(out.items()))


@register
@dataclass(eq=False)
class NeuronDeactivation:
    """Overwrite chosen MLP neurons' activations (``[batch, pos, d_mlp]``) at chosen positions.

    Args:
        neurons: ``{layer: [indices]}`` or ``[(layer, index), ...]`` (negative layers count
            from the end; ``{-1: [...], 5: [...]}`` on a 6-layer model is refused as a
            duplicate).
        value: ``"zero"``, one float for every neuron, or ``{layer: tensor}`` holding one value
            per listed neuron of that layer (e.g. their means), in the order given.
        positions: ``"all"``, ``"last"`` (mask-aware) or explicit indices.
        site: ``"mlp_post"`` (default, the activation that multiplies the output weights,
            ``mlp.hook_post``) or ``"mlp_pre"`` (``mlp.hook_pre``; for gated MLPs, the gate
            pre-activation).

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> with lens.apply(model, NeuronDeactivation({1: [5, 17]})):
        ...     logits = model(torch.tensor([[1, 2, 3]]))
    """

    neurons: dict[int, list[int]] | Sequence[tuple[int, int]]
    value: str | float | dict[int, Tensor] = "zero"
    positions: Positions = "all"
    site: NeuronSite = "mlp_post"

    def __post_init__(self) -> None:
        self.neurons = _as_neurons(self.neurons)
        if isinstance(self.value, str):
            if self.value != "zero":
                raise ValueError(
                    f"value must be 'zero', a float or {{layer: tensor}}, got {self.value!r}"
                )
        elif isinstance(self.value, Mapping):
            values = {as_layer(k, "value layer", from_end=True): v for k, v in self.value.items()}
            if set(values) != set(self.neurons):
                raise ValueError(
                    f"value has layers {sorted(values)}, neurons have layers {sorted(self.neurons)}"
                )
            self.value = {
                layer: as_vector(values[layer], f"value[{layer}]", len(idx))
                for layer, idx in self.neurons.items()
            }
        else:
            self.value = finite_float(self.value, "value")
        self.positions = validate_positions(self.positions)
        self.site = check_site(self.site, NEURON_SITES)

    @property
    def by_layer(self) -> dict[int, list[int]]:
        """``{layer: [neurons]}`` (the form ``neurons`` is normalised to on construction)."""
        return cast(dict[int, list[int]], self.neurons)

    def hooks(self, model: Any) -> list[HookPair]:
        neurons = self.by_layer
        layers = resolve_layers(model, list(neurons), what="NeuronDeactivation layers")
        width = int(model.cfg.d_mlp)
        for layer, idx in neurons.items():
            bad = [i for i in idx if i >= width]
            if bad:
                raise ValueError(
                    f"NeuronDeactivation: neurons {bad} at layer {layer} out of range; "
                    f"this model has neurons 0..{width - 1}"
                )
        return [
            (hook_name(self.site, layer), self._hook(key, model))
            for key, layer in zip(neurons, layers, strict=True)
        ]

    def _hook(self, layer: int, model: Any) -> Any:
        index = torch.tensor(self.by_layer[layer], dtype=torch.long)
        value = self.value

        def edit(act: Tensor) -> Tensor:
            if isinstance(value, str):  # "zero"
                new: Any = 0.0
            elif isinstance(value, dict):
                new = value[layer].to(act.device, act.dtype)
            else:
                new = value
            out = act.clone()
            out[..., index.to(act.device)] = new
            return out

        return at_positions(self.positions, model, edit)

    def to_dict(self) -> dict[str, Any]:
        if isinstance(self.value, dict):
            value: Any = {"per_neuron": {str(k): tensor_to_json(v) for k, v in self.value.items()}}
        else:
            value = self.value
        return {
            "type": type(self).__name__,
            "neurons": {str(k): list(v) for k, v in self.by_layer.items()},
            "value": value,
            "positions": positions_to_json(self.positions),
            "site": self.site,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> NeuronDeactivation:
        value = spec["value"]
        if isinstance(value, dict):
            value = {int(k): tensor_from_json(v) for k, v in value["per_neuron"].items()}
        return cls(
            {int(k): v for k, v in spec["neurons"].items()},
            value=value,
            positions=positions_from_json(spec["positions"]),
            site=spec["site"],
        )
