"""Measuring the causal tracing study: the facts each language knows, traced."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lens.patching.tracing import ROLES, causal_trace
from lens.studies._organism_data import model_label, organism_world
from lens.studies.causal_tracing.config import Config
from lens.studies.causal_tracing.data import CausalTracingData
from lens.studies.causal_tracing.findings import findings
from lens.studies.causal_tracing.report import Result
from lens.studies.config_types import StudyConfigError
from lens.studies.recovery import layer_recovery, planted_truth
from lens.tokens import TokenError, batch, token_id

# Prompts written for lens (prompt, subject, answer) for English-speaking real models.
ENGLISH_FACTS = [
    ("The capital of France is", "France", " Paris"),
    ("The capital of Japan is", "Japan", " Tokyo"),
    ("The capital of Italy is", "Italy", " Rome"),
    ("The capital of Germany is", "Germany", " Berlin"),
    ("The capital of Spain is", "Spain", " Madrid"),
    ("The Eiffel Tower is located in the city of", "Eiffel Tower", " Paris"),
    ("The Colosseum is located in the city of", "Colosseum", " Rome"),
    ("The currency of Japan is the", "Japan", " yen"),
]
LAST_SUBJECT, FURTHER = ROLES.index("last subject"), ROLES.index("further")
Fact = tuple[str, str, str]


def facts_by_language(model: Any, config: Config) -> dict[str, list[Fact]]:
    """(prompt, subject, answer) per language: the organism's facts, else ENGLISH_FACTS."""
    from lens.organism.prompts import fact_queries

    world = organism_world(model, required=False)
    if world is None:
        return {"en": list(ENGLISH_FACTS)}
    langs = config.languages or list(world.languages)
    return {
        lang: [(q.prompt, q.subject, q.answer) for q in fact_queries(world, lang)] for lang in langs
    }


def _answer_id(model: Any, word: str) -> int | None:
    """The answer's one token id by lens's token rule, or None (several tokens, unknown)."""
    try:
        return token_id(model, word, what="answer")
    except TokenError:
        return None


def known_facts(model: Any, facts: list[Fact], n: int) -> list[tuple[str, str, int]]:
    """The first ``n`` facts whose answer is one token and the model's top-1 next token, and
    whose subject is found in the prompt's tokens: (prompt, subject, answer id)."""
    out = []
    for prompt, subject, answer in facts:
        ans = _answer_id(model, answer)
        if ans is None or subject not in prompt:
            continue
        b = batch(model, [prompt])
        with torch.no_grad():
            top = int(model(b.tokens, attention_mask=b.attention_mask)[0, -1].argmax())
        if top == ans and b.span(0, subject):
            out.append((prompt, subject, ans))
        if len(out) == n:
            break
    return out


def trace_language(
    model: Any,
    known: list[tuple[str, str, int]],
    window: int,
    config: Config,
    subjects: list[str] | None = None,
) -> dict[str, Any]:
    """Trace one language's known facts; the per-language entry of :class:`CausalTracingData`.
    ``subjects``: the strings whose token-embedding std sets sigma (None: the prompts')."""
    if not known:
        return {"n_prompts": 0}
    prompts = [p for p, _, _ in known]
    res = causal_trace(
        model, prompts, [s for _, s, _ in known], answer=[a for _, _, a in known],
        window=window, noise=config.noise, noise_from=subjects, samples=config.samples,
        seed=config.seed, batch_size=config.batch_size, progress=config.progress,
    )  # fmt: skip
    by_role = {k: res.by_role(k) for k in ("resid", "mlp", "attn")}
    mlp_last = by_role["mlp"][:, LAST_SUBJECT]
    mlp_further = by_role["mlp"][:, FURTHER]
    further_peak = (
        float(np.nanmax(mlp_further.numpy())) if mlp_further.isfinite().any() else None
    )  # None: the prompts have no token between the subject and the last one
    return {
        "n_prompts": len(known),
        "prompts": prompts,
        "sigma": res.sigma,
        "noise_rule": res.noise_rule(),
        "clean_prob": float(res.clean_prob.mean()),
        "corrupt_prob": float(res.corrupt_prob.mean()),
        "by_role": {k: v.tolist() for k, v in by_role.items()},
        "mlp_peak_layer": int(mlp_last.argmax()),
        "mlp_last_subject_peak": float(mlp_last.max()),
        "mlp_further_peak": further_peak,
    }


def run(model: Any, config: Config) -> Result:
    """Trace every language's known facts; one finding per language about the early site.

    Example:
        >>> import lens
        >>> from lens.studies import causal_tracing as ct
        >>> res = ct.run(lens.load_model("organism"), ct.quick_config())  # doctest: +SKIP
    """
    n_layers = int(model.cfg.n_layers)
    window = config.window or max(1, round(n_layers / 5))
    if window > n_layers:
        raise StudyConfigError(
            f"causal_tracing: config key 'window' is {window}, but this model has only "
            f"{n_layers} layers; use a window of 1..{n_layers}"
        )
    by_language = facts_by_language(model, config)
    languages = {
        lang: trace_language(
            model,
            known_facts(model, facts, config.prompts_per_language),
            window,
            config,
            [s for _, s, _ in facts] if config.noise_from == "subjects" else None,
        )
        for lang, facts in tqdm(by_language.items(), desc="causal tracing", unit="language")
    }
    data = CausalTracingData(
        window=window, n_layers=n_layers, languages=languages, noise=config.noise,
        noise_from=config.noise_from,
    )  # fmt: skip
    truth = planted_truth(model, "fact_pathway")
    if truth is not None:
        data.recovery = _recovery(truth, data)
    return Result(
        config=config.to_dict(), model=model_label(model), data=data, findings=findings(data)
    )


def _recovery(truth: dict[str, Any], data: CausalTracingData) -> dict[str, Any] | None:
    """The MLP peak at the last subject token vs the planted fact pathway's layer, in the
    planted language (None when it was not traced); the early-site finding must hold there
    exactly when the pathway is planted."""
    from lens.studies.causal_tracing.findings import early_site

    lang = truth["language"]
    entry = data.languages.get(lang)
    if entry is None or entry["n_prompts"] == 0:
        return None
    shown = early_site(lang, entry, data.n_layers)[0]
    planted = bool(truth["planted"])
    check = {"early site found": shown} if planted else {"early site not found": not shown}
    return layer_recovery(
        {lang: entry["mlp_peak_layer"]}, truth["layer"], "fact pathway (MLP at the last "
        "subject token)", planted=planted, checks=check,
    )  # fmt: skip
