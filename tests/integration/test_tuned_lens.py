"""The tuned lens on trained models: stories260k (translators trained inside the test) and
the organism (the shipped translators), both on held-out text; and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lens
from lens import organism
from lens.cli import main as cli_main
from lens.tuned_lens.organism import organism_corpus
from tests.conftest import STORY_TEXT
from tests.integration.conftest import require_organism


@torch.no_grad()
def sampled_stories(model, n: int, length: int, seed: int) -> list[list[int]]:
    """Stories sampled from the model itself (BOS + ``length`` tokens, temperature 1)."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.ones(n, 1, dtype=torch.long)  # BOS
    for _ in range(length):
        probs = torch.softmax(model(tokens)[:, -1].double(), dim=-1)
        tokens = torch.cat([tokens, torch.multinomial(probs, 1, generator=gen)], dim=1)
    return tokens.tolist()


def assert_tuned_beats_logit(res) -> None:
    print(res.table())
    last = len(res.layers) - 1
    for i in range(last):
        assert res.tuned_kl_bits[i] < res.logit_kl_bits[i], res.layers[i]
    # at the last layer both readouts are the model's own output
    assert res.logit_kl_bits[last] < 1e-4 and res.tuned_kl_bits[last] < 1e-3


def test_stories_trained_in_test_beats_logit_lens_on_heldout_text(stories_model):
    model = stories_model
    docs = sampled_stories(model, 32, 64, seed=0)
    tl = lens.tuned_lens.train(model, docs, steps=30, tokens_per_step=512, progress=False)
    res = lens.tuned_lens.evaluate(
        model, STORY_TEXT, translator=tl
    )  # human-written, never trained on
    assert res.n_tokens > 100
    assert_tuned_beats_logit(res)


def test_shipped_organism_translators_beat_logit_lens_on_heldout_text(model):
    require_organism()
    tl = lens.tuned_lens.load("organism")
    assert tl.record["steps"] > 0 and len(tl.record["heldout_tuned_kl_bits"]) == 6
    res = lens.tuned_lens.evaluate(model, organism_corpus("heldout", 200), translator=tl)
    assert_tuned_beats_logit(res)
    assert res.logit_kl_bits[0] > 2 * res.tuned_kl_bits[0]


def test_cli_train_eval_and_lens_tuned(tmp_path, capsys, model):
    require_organism()
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": t}) for t in organism_corpus("train", 60)))
    out = tmp_path / "tl"
    args = ["tuned-lens", "train", "organism", "--corpus", str(corpus), "--out", str(out)]
    assert cli_main([*args, "--steps", "3", "--tokens-per-step", "256", "--quiet"]) == 0
    assert "trained 6 translators: 3 steps" in capsys.readouterr().out
    assert lens.tuned_lens.load(out).record["corpus"] == str(corpus)
    e_args = ["tuned-lens", "eval", "organism", "organism", "--out", str(tmp_path / "e")]
    assert cli_main([*e_args, "--quiet"]) == 0
    assert (tmp_path / "e" / "kl.png").is_file()
    page = (tmp_path / "e" / "report.html").read_text(encoding="utf-8")
    assert page.count('data-kind="lines"') == 2 and "tuned lens: top-1 probability" in page
    saved = json.loads((tmp_path / "e" / "comparison.json").read_text())
    assert saved["tuned_kl_bits"][0] < saved["logit_kl_bits"][0]
    prompt = organism.fact_queries(organism.world(), "en")[0].prompt
    assert cli_main(["lens", "organism", prompt, "--tuned", "organism"]) == 0
    tuned_out = capsys.readouterr().out
    assert cli_main(["lens", "organism", prompt]) == 0
    assert capsys.readouterr().out != tuned_out  # the tuned lens reads other probabilities
    with pytest.raises(SystemExit):
        cli_main(["tuned-lens", "train", "organism"])  # --out is required
    assert np.isfinite(saved["model_ce_bits"])
