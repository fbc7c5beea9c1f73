"""Feature cards against hand computations, and the ``lens sae`` commands end to end."""

from __future__ import annotations

import json

import pytest
import torch

import lens
from interventions import bridge
from lens.cli import main
from lens.dictionaries import random_sae
from lens.dictionaries.inspection import auroc, feature_card, logit_effects, plot_card

PROMPTS = [[5, 9, 3, 17, 2, 40, 11], [7, 7, 1, 60], [100, 3, 4, 5, 6], [8, 8, 8]]


@pytest.fixture(scope="module")
def model():
    return lens.load_model(lens.tiny_config("gpt2"))


@torch.no_grad()
def test_feature_card_matches_hand_computation(model, tmp_path):
    sae = random_sae(model, site="resid_post", layer=1, n_latents=32, k=8, seed=1)
    acts = []
    for p in PROMPTS:
        probe = lens.Probe(sae.in_hook)
        with lens.apply(model, probes=[probe]):
            model(torch.tensor([p]))
        acts.append(sae.encode(probe.value[0]))
    f = int(torch.cat(acts).sum(0).argmax())
    card = feature_card(model, sae, f, PROMPTS, top=2, window=3)
    per_prompt = [float(a[:, f].max()) for a in acts]
    best = sorted(range(len(PROMPTS)), key=lambda i: -per_prompt[i])[:2]
    assert [c.prompt_index for c in card.contexts] == best
    assert abs(card.contexts[0].max_act - max(per_prompt)) < 1e-5
    c0 = card.contexts[0]
    assert abs(c0.acts[c0.peak] - c0.max_act) < 1e-4
    nonzero = int((torch.cat(acts)[:, f] > 0).sum())
    assert sum(card.histogram) == nonzero and nonzero > 0
    assert abs(card.density - nonzero / sum(map(len, PROMPTS))) < 1e-9
    effects = (sae.W_dec[f] * bridge.final_norm(model).weight) @ bridge.unembed(model)[0]
    up, down = logit_effects(model, sae, f, top=3)
    assert [v for _, v in up] == pytest.approx(effects.topk(3).values.tolist(), abs=1e-5)
    assert [v for _, v in down] == pytest.approx((-(-effects).topk(3).values).tolist(), abs=1e-5)
    json.dumps(card.to_json())
    png = plot_card(card, tmp_path / "card.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="does not exist"):
        feature_card(model, sae, 32, PROMPTS)


def test_auroc_by_hand():
    pos = torch.tensor([[0.9, 0.0], [0.8, 0.0], [0.1, 1.0]])
    neg = torch.tensor([[0.2, 0.0], [0.0, 0.0]])
    # column 0: pairs won 2+2+0.. (0.1 > 0.0 wins, 0.1 < 0.2 loses) = 5 of 6
    assert auroc(pos, neg).tolist() == pytest.approx([5 / 6, (0.5 * 4 + 2) / 6])


def test_sae_cli_train_eval_inspect(tmp_path, capsys):
    out = tmp_path / "sae"
    rc = main(
        [
            "sae",
            "train",
            "random:llama",
            "--corpus",
            "builtin",
            "--layer",
            "1",
            "--latents",
            "64",
            "--k",
            "4",
            "--steps",
            "3",
            "--batch-size",
            "64",
            "--out",
            str(out),
            "--saelens",
            "--quiet",
        ]
    )
    assert rc == 0 and (out / "dictionary.safetensors").is_file()
    assert (out / "saelens" / "cfg.json").is_file()
    assert "3 steps" in capsys.readouterr().out
    rc = main(
        [
            "sae",
            "eval",
            "random:llama",
            str(out / "saelens"),
            "--corpus",
            "builtin",
            "--docs",
            "6",
            "--json",
            "--quiet",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "CE loss recovered" in text
    assert json.loads(text.strip().splitlines()[-1])["n_prompts"] == 6
    ev_dir = tmp_path / "ev"
    args = ["sae", "eval", "random:llama", str(out), "--corpus", "builtin", "--docs", "6"]
    assert main([*args, "--quiet", "--exclude-first", "--out", str(ev_dir)]) == 0
    rec = json.loads((ev_dir / "evaluation.json").read_text())
    assert rec["n_prompts"] == 6 and rec["exclude_first"] and rec["dictionary"] == str(out)
    # with the first positions left out, both explained variances cover the same tokens
    assert rec["explained_variance"] == pytest.approx(rec["explained_variance_after_first"])
    assert "first position excluded" in (ev_dir / "evaluation.md").read_text()
    assert f"saved to {ev_dir}" in capsys.readouterr().out
    rc = main(
        [
            "sae",
            "inspect",
            "random:llama",
            str(out),
            "--corpus",
            "builtin",
            "--docs",
            "6",
            "--feature",
            "0",
            "--feature",
            "5",
            "--out",
            str(tmp_path / "cards"),
            "--quiet",
        ]
    )
    assert rc == 0 and (tmp_path / "cards" / "feature_5.png").is_file()
    page = (tmp_path / "cards" / "report.html").read_text()  # the same cards, interactive
    saved = json.loads((tmp_path / "cards" / "feature_5.json").read_text())
    assert "feature 0 at blocks.1" in page and "feature 5 at blocks.1" in page
    assert f'"density":{saved["density"]},"tokens read":{saved["n_tokens"]}' in page
    assert (
        main(
            [
                "sae",
                "train",
                "random:llama",
                "--layer",
                "1",
                "--corpus",
                "nope.txt",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
