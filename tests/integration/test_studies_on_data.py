"""concept_space, language_neurons and refusal on a model that is not the organism
(stories260k) with tiny hand-written dataset files (tests/data/): the plumbing, with numbers
checked against independent computations (transformers hidden states, one unpadded text or
greedy loop at a time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from interventions import NeuronDeactivation
from lens.studies import StudyResult, concept_space, language_neurons, refusal
from lens.studies.refusal.requests import from_dataset
from tests.conftest import manual_loss, stories_path

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def cs_result(stories_model):
    config = concept_space.Config(data=str(DATA / "tiny_translations.jsonl"), n_shots=2)
    return concept_space.run(stories_model, config)


def test_concept_space_panels_prompts_and_exclusions(stories_model, cs_result):
    d = cs_result.data
    assert d.source.endswith("tiny_translations.jsonl") and d.pivot == "en"
    assert [p["name"] for p in d.panels] == ["fr->de", "de->fr", "fr->fr", "de->de"]
    assert [p["group"] for p in d.panels] == ["translate to language"] * 2 + ["repetition"] * 2
    tok = stories_model.tokenizer
    words = {"fr": {}, "de": {}, "en": {}}
    for line in (DATA / "tiny_translations.jsonl").read_text().splitlines()[1:]:
        import json

        r = json.loads(line)
        words[r["language"]][r["concept"]] = r["word"]
    head = {"fr": 'Français: "', "de": 'Deutsch: "'}
    for p in d.panels:
        src, tgt = p["name"].split("->")
        ctx = f'{head[src][:-2]} "x" - {head[tgt]}'

        def after(word: str, ctx: str = ctx) -> int:  # the token that follows the quote
            n = len(tok.encode(ctx, add_special_tokens=False))
            return tok.encode(ctx + word, add_special_tokens=False)[n]

        shared = sorted(c for c in words[tgt] if after(words[tgt][c]) == after(words["en"][c]))
        assert p["excluded"] == shared and d.excluded[p["name"]] == len(shared)
        assert sorted(p["concepts"] + shared) == sorted(words[tgt])
        for c, prompt in zip(p["concepts"], p["prompts"]):
            lines = prompt.split("\n")
            assert (
                len(lines) == 3
                and lines[-1] == f'{head[src][:-2]} "{words[src][c]}" - ' + (head[tgt])
            )
            assert all(
                line.endswith('"') and f'"{words[src][c]}"' not in line for line in lines[:-1]
            )
    assert sum(d.excluded.values()) > 0  # the file has concepts that share a first token


def test_concept_space_probabilities_match_transformers(stories_model, cs_result):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(stories_path()), dtype=torch.float32).eval()
    tok = stories_model.tokenizer
    panel = cs_result.data.panels[0]
    rows = []
    with torch.no_grad():
        for prompt in panel["prompts"]:
            ids = [tok.bos_token_id, *tok.encode(prompt, add_special_tokens=False)]
            out = hf(input_ids=torch.tensor([ids]), output_hidden_states=True)
            layers = [hf.model.norm(h[0, -1]) for h in out.hidden_states[1:-1]]
            logits = torch.stack([hf.lm_head(h) for h in layers] + [out.logits[0, -1]])
            rows.append(torch.softmax(logits.double(), -1).numpy())  # [layer, vocab]
    probs = np.stack(rows)
    items = np.arange(len(rows))
    from lens.data import load
    from lens.studies.concept_space.tasks import build_panel, words_by_language

    words = words_by_language(load(DATA / "tiny_translations.jsonl").records)
    built = build_panel(stories_model, words, "fr", "de", "en", [], 2, None, 0)
    assert built.prompts == panel["prompts"]
    for curve in ("target answer", "pivot answer", "source word"):
        expected = probs[items, :, built.words[curve]].mean(0)
        np.testing.assert_allclose(panel["mass"][curve], expected, atol=2e-5)
    assert not np.allclose(panel["mass"]["target answer"], panel["mass"]["pivot answer"])


def test_concept_space_round_trip_and_findings(cs_result, tmp_path):
    out = cs_result.save(tmp_path / "cs")
    back = StudyResult.load(out)
    assert back.data == cs_result.data and back.findings == cs_result.findings
    report = (out / "report.md").read_text()
    assert "excluded" in report and "tiny_translations.jsonl" in report
    assert {p.name for p in out.glob("*.png")} == {"translation_panels.png", "summary.png"}
    min_mass = cs_result.data.summary["min_mass"]
    groups = cs_result.data.summary["groups"]
    assert (
        list(groups)
        == ["translate to language", "repetition"]
        == [
            ("translate to language" if "Translating" in f.claim else "repetition")
            for f in cs_result.findings
        ]
    )
    for finding, s in zip(cs_result.findings, groups.values()):
        pivot, target = s["mass"]["pivot answer"], s["mass"]["target answer"]
        ahead = any(p > t and p >= min_mass for p, t in zip(pivot[:-1], target[:-1]))
        assert finding.reproduced == (ahead and target[-1] > pivot[-1])


def test_language_neurons_on_a_texts_file(stories_model):
    path = str(DATA / "tiny_texts.jsonl")
    config = language_neurons.Config(data=path, eval_fraction=0.25, n_random_seeds=1)
    res = language_neurons.run(stories_model, config)
    d = res.data
    assert d.corpus == path and d.languages == ["en", "fr", "python"]
    assert d.n_eval_texts == {"en": 1, "fr": 1, "python": 1}
    assert d.n_stat_texts == {"en": 3, "fr": 3, "python": 3}
    i = max(range(3), key=lambda k: d.n_neurons[d.languages[k]])
    lang = d.languages[i]
    neurons: dict[int, list[int]] = {}
    for layer, j in d.neurons[lang]:
        neurons.setdefault(layer, []).append(j)
    texts = d.eval_texts[lang]
    base = manual_loss(stories_model, texts)
    after = manual_loss(stories_model, texts, [NeuronDeactivation(neurons)])
    assert base == pytest.approx(d.base_loss[i], abs=1e-4)
    assert after - base == pytest.approx(d.increase[i][i], abs=1e-4)
    assert abs(after - base) > 1e-4  # the deactivation changed something


def test_language_neurons_rejects_a_file_of_another_kind(stories_model):
    config = language_neurons.Config(data=str(DATA / "tiny_requests.jsonl"))
    with pytest.raises(ValueError, match="holds requests records; this study needs texts"):
        language_neurons.run(stories_model, config)


def _greedy(model, prompt: str, n: int) -> list[int]:
    """A plain greedy loop on one unpadded prompt (BOS as lens.tokens.batch adds it)."""
    ids = [model.tokenizer.bos_token_id, *model.tokenizer.encode(prompt, add_special_tokens=False)]
    out = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
            ids.append(nxt)
            out.append(nxt)
    return out


def test_refusal_stops_when_the_model_hardly_refuses(stories_model, tmp_path):
    path = str(DATA / "tiny_requests.jsonl")
    # "refusal phrases" that openings of stories260k's own replies match (it replies "Ann...",
    # "Char...", "Can you..."), so the baseline counts something: it must count exactly the
    # requests whose greedy reply starts with the phrase's tokens
    phrases = {"en": ["An"], "fr": ["Ch"]}
    config = refusal.Config(
        data=path, pivot="fr", refusal_phrases=phrases, min_baseline_refusal=1.0, progress=False
    )
    res = refusal.run(stories_model, config)
    d = res.data
    assert not d.studied and d.directions == {} and d.refusal == {}
    tok = stories_model.tokenizer
    for lang in ("en", "fr"):
        ids = tok(phrases[lang][0], add_special_tokens=False)["input_ids"]
        for label in ("harmful", "harmless"):
            texts = [t for t, x in _requests(path, lang) if x == label]
            expected = np.mean([_greedy(stories_model, t, len(ids)) == ids for t in texts])
            assert d.baseline[lang][label] == pytest.approx(expected), (lang, label)
    assert 0 < d.baseline["fr"]["harmful"] < 1.0
    assert len(res.findings) == 1 and not res.findings[0].reproduced
    assert res.headline().startswith("not studied")
    out = res.save(tmp_path / "rf")
    assert [p.name for p in out.glob("*.png")] == ["baseline_refusal.png"]
    assert "None of them is tested here" in (out / "report.md").read_text()
    assert StudyResult.load(out).data == d


def test_refusal_full_run_on_a_requests_file(stories_model):
    """Threshold 0: the whole pipeline runs on the file's splits (plumbing only; the model
    does not refuse, so the findings are about nothing, which the threshold normally stops)."""
    config = refusal.Config(
        data=str(DATA / "tiny_requests.jsonl"),
        min_baseline_refusal=0.0,
        positions=[-1],
        progress=False,
    )
    res = refusal.run(stories_model, config)
    d = res.data
    assert d.studied and d.languages == ["en", "fr"] and d.pivot == "en"
    assert d.n_prompts == {g: {"train": 2, "val": 1, "heldout": 1} for g in ("en", "fr")}
    assert set(d.directions) == {"en", "fr"} and len(res.findings) == 5
    assert d.prompt_format.startswith("the request text as it is")


def test_refusal_uses_the_chat_template(stories_model):
    from lens.data import load

    tok = stories_model.tokenizer
    old = getattr(tok, "chat_template", None)
    tok.chat_template = "{% for m in messages %}Q: {{ m['content'] }}\nA:{% endfor %}"
    try:
        req = from_dataset(
            stories_model,
            load(DATA / "tiny_requests.jsonl"),
            "tiny",
            None,
            None,
            None,
            (0.5, 0.25),
            True,
            0,
        )
    finally:
        tok.chat_template = old
    prompts, texts = req.every("en", True)
    assert prompts == [f"Q: {t}\nA:" for t in texts] and len(texts) == 4
    assert req.prompt_format.startswith("the model's chat template")


def _requests(path: str, lang: str) -> list[tuple[str, str]]:
    import json

    rows = [json.loads(x) for x in Path(path).read_text().splitlines()[1:]]
    return [(r["text"], r["label"]) for r in rows if r["language"] == lang]
