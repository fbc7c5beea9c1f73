"""load_model's dtype and device placement pass-through (device_map / max_memory)."""

from __future__ import annotations

import pytest
import torch

import lens
from lens.models import ModelLoadError


@pytest.mark.parametrize("device_map", ["cpu", {"": "cpu"}])
def test_device_map_loads_the_same_model_as_device(hf_folders, device_map):
    folder = hf_folders["llama"]
    placed = lens.load_model(folder, device_map=device_map, dtype=torch.bfloat16)
    plain = lens.load_model(folder, device="cpu", dtype=torch.bfloat16)
    assert {p.dtype for p in placed.parameters()} == {torch.bfloat16}
    assert not placed.training
    tokens = torch.tensor([[1, 5, 9, 30]])
    with torch.no_grad():
        assert torch.equal(placed(tokens), plain(tokens))


def test_placement_errors_say_what_to_do(hf_folders):
    folder = hf_folders["gpt2"]
    with pytest.raises(ModelLoadError, match="not both"):
        lens.load_model(folder, device="cpu", device_map="auto")
    with pytest.raises(ModelLoadError, match="needs device_map"):
        lens.load_model(folder, max_memory={"cpu": "1GiB"})
    with pytest.raises(ModelLoadError, match="device= instead"):
        lens.load_model(lens.tiny_config("llama"), device_map="auto")
    with pytest.raises(ModelLoadError, match="device= instead"):
        lens.load_model("organism", device_map="auto")
