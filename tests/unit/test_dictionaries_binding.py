"""A dictionary trained by lens is bound to its model's weights (fingerprint), with an opt-out;
SAELens folders carry no fingerprint and bind by shape only."""

from __future__ import annotations

import pytest
import torch

import lens
from lens.dictionaries import SpliceSAE, encode, load, random_sae, save, save_saelens
from lens.tuned_lens.translators import fingerprint


def _pair():
    """Two models of one shape whose weights differ (a 'fine-tuned' copy)."""
    model = lens.load_model(lens.tiny_config("llama"))
    tuned = lens.load_model(lens.tiny_config("llama"))
    with torch.no_grad():
        next(iter(tuned.parameters())).add_(0.01)
    return model, tuned


def test_fingerprint_enforced_with_opt_out(tmp_path):
    model, tuned = _pair()
    sae = random_sae(model, site="resid_post", layer=1, n_latents=32, k=4)
    recorded, other = sae.meta["binding"]["fingerprint"], fingerprint(tuned)
    assert recorded == fingerprint(model) and recorded != other
    before = lens.count_hooks(tuned)
    with pytest.raises(ValueError, match=rf"{recorded}.*{other}.*strict=False") as err:
        lens.apply(tuned, SpliceSAE(sae))
    assert "fine-tuned" in str(err.value)
    with pytest.raises(ValueError, match="other weights"):
        next(encode(tuned, sae, [[1, 2, 3]]))
    assert lens.count_hooks(tuned) == before
    # the model it was made for is accepted; so is the other one after opting out
    assert next(encode(model, sae, [[1, 2, 3]])).acts.shape == (3, 32)
    folder = save(sae, tmp_path / "own")
    with pytest.raises(ValueError, match="other weights"):
        next(encode(tuned, load(folder), [[1, 2, 3]]))
    loose = load(folder, strict=False)
    assert next(encode(tuned, loose, [[1, 2, 3]])).acts.shape == (3, 32)
    sae.strict = False
    with lens.apply(tuned, SpliceSAE(sae)):
        tuned(torch.tensor([[1, 2, 3]]))
    # an edit in place after binding is caught too (the cached fingerprint follows weights)
    sae.strict = True
    with torch.no_grad():
        next(iter(model.parameters())).mul_(1.5)
    with pytest.raises(ValueError, match="other weights"):
        lens.apply(model, SpliceSAE(sae))


def test_saelens_folder_binds_by_shape_only(tmp_path):
    model, tuned = _pair()
    sae = random_sae(model, site="resid_post", layer=1, n_latents=32, k=4)
    theirs = load(save_saelens(sae, tmp_path / "theirs"))
    assert "fingerprint" not in (theirs.meta.get("binding") or {})
    for m in (model, tuned):
        assert next(encode(m, theirs, [[1, 2, 3]])).acts.shape == (3, 32)
    theirs.layer = 9  # the shape check still holds
    with pytest.raises(ValueError, match="layer 9"):
        next(encode(tuned, theirs, [[1, 2, 3]]))
