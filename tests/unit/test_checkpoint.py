"""Checkpoint integrity: the stored sha256 catches flipped bytes; truncation is named."""

import json
import struct

import pytest
import torch
from safetensors import safe_open

from lens.stats import MomentStats
from lens.stats.checkpoint import (
    CheckpointError,
    load_states,
    load_tensors,
    read_meta,
    save_checkpoint,
    save_tensors,
)

SITES = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]


def _accs():
    acc = MomentStats(SITES, 4, ["a", "b"])
    g = torch.Generator().manual_seed(0)
    acc.begin_batch(torch.tensor([0, 1, 0]), torch.arange(3))
    for s in range(len(SITES)):
        acc.update(s, torch.randn(3, 5, 4, generator=g), torch.ones(3, 5, dtype=torch.bool), True)
    return [acc]


def _data_start(path) -> int:
    with open(path, "rb") as fh:
        return 8 + struct.unpack("<Q", fh.read(8))[0]


def _flip(path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x10
    path.write_bytes(bytes(raw))


def test_flipped_byte_in_tensor_data_raises_naming_the_file(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, _accs(), {"done": 3})
    before = {k: t.clone() for k, t in load_tensors(path, "lens.collect/1")[0].items()}
    _flip(path, _data_start(path) + 5)
    with safe_open(str(path), framework="pt") as fh:  # the flip really changed a tensor
        after = {k: fh.get_tensor(k) for k in fh.keys()}
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert read_meta(path)["done"] == 3  # the header is intact
    with pytest.raises(CheckpointError, match="delete it") as info:
        load_states(path, [MomentStats(SITES, 4, ["a", "b"])])
    assert str(path) in str(info.value) and "checksum" in str(info.value)


def test_truncated_file_says_corrupt_or_incomplete(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, _accs(), {"done": 3})
    raw = path.read_bytes()
    for cut in (len(raw) - 7, _data_start(path) - 10, 5):
        path.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match="corrupt or incomplete"):
            load_states(path, [MomentStats(SITES, 4, ["a", "b"])])


def test_other_files_are_named_as_such(tmp_path):
    path = tmp_path / "other.safetensors"
    save_tensors(path, {"w": torch.ones(2)}, {"step": 1}, kind="lens.other/1")
    with pytest.raises(CheckpointError, match="not a lens.collect/1 checkpoint"):
        read_meta(path)
    tensors, meta = load_tensors(path, kind="lens.other/1")
    assert meta["step"] == 1 and torch.equal(tensors["w"], torch.ones(2))


def test_checkpoint_without_checksum_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "old.safetensors"
    save_file({"w": torch.ones(2)}, str(path), metadata={"lens": json.dumps({"format": "k/1"})})
    with pytest.raises(CheckpointError, match="no checksum"):
        load_tensors(path, kind="k/1")


def test_collect_refuses_to_resume_from_a_flipped_checkpoint(tmp_path):
    import lens

    model = lens.load_model(lens.tiny_config("llama"))
    gen = torch.Generator().manual_seed(0)
    data = [(torch.randint(3, 250, (5,), generator=gen).tolist(), "ab"[i % 2]) for i in range(8)]
    ckpt = tmp_path / "run.safetensors"
    lens.collect(
        model,
        data,
        accumulators=[MomentStats.for_model(model, ["a", "b"])],
        checkpoint=ckpt,
        batch_size=4,
        progress=False,
    )
    _flip(ckpt, ckpt.stat().st_size - 3)
    with pytest.raises(CheckpointError, match="delete it") as info:
        lens.collect(
            model,
            data,
            accumulators=[MomentStats.for_model(model, ["a", "b"])],
            checkpoint=ckpt,
            batch_size=4,
            progress=False,
        )
    assert str(ckpt) in str(info.value)
    assert lens.count_hooks(model) == 0
