"""Causal tracing of factual recall (Meng et al. 2022; the fact-tracing question of
arXiv 2505.14824): where do restored clean states bring the answer back after the subject's
embeddings were noised? Per language on the organism; English prompts on SmolLM2.

The paper's two sites: an early one (MLP outputs at the last subject token, middle layers) and
a late one (hidden states at the last token, late layers). This study reports, per language,
whether the early site shows up, with the numbers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lens.patching.tracing import ROLES, causal_trace
from lens.studies.base import Finding, StudyConfig, StudyResult, register_study
from lens.studies.base import fmt_number as _num

# Prompts written for lens (subject, answer) for English-speaking real models such as SmolLM2.
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


@dataclass
class Config(StudyConfig):
    """What to trace.

    Attributes:
        languages: organism languages (None: all); ignored for models without the organism's
            world, which get :data:`ENGLISH_FACTS`.
        prompts_per_language: prompts traced per language (those the model answers right).
        samples: noise draws per prompt; noise: its std in embedding stds (3 in the paper).
        window: layers restored together for MLP / attention (None: a fifth of the layers).
        batch_size: rows per forward.
    """

    languages: list[str] | None = None
    prompts_per_language: int = 8
    samples: int = 5
    noise: float = 3.0
    window: int | None = None
    batch_size: int = 128


def quick_config() -> Config:
    return Config(languages=["en", "ka"], prompts_per_language=2, samples=2)


def _facts(model: Any, config: Config) -> dict[str, list[tuple[str, str, str]]]:
    from lens.organism.prompts import fact_queries
    from lens.studies._organism_data import organism_world

    world = organism_world(model, required=False)
    if world is None:
        return {"en": list(ENGLISH_FACTS)}
    langs = config.languages or list(world.languages)
    return {
        lang: [(q.prompt, q.subject, q.answer) for q in fact_queries(world, lang)] for lang in langs
    }


def _answer_id(model: Any, word: str) -> int | None:
    tok = model.tokenizer
    for text in (word, " " + word.lstrip()):
        ids = list(tok([text], add_special_tokens=False)["input_ids"][0])
        if len(ids) == 1:
            return int(ids[0])
    return None


def _known(model: Any, facts: list[tuple[str, str, str]], n: int) -> list[tuple[str, str, int]]:
    """Facts whose answer is one token, the model's top-1 next token, subject findable."""
    from lens.tokens import batch

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


@dataclass
class Result(StudyResult):
    study = "causal_tracing"
    title = "Causal tracing of factual recall"
    plot_data: dict[str, Any] = field(default_factory=dict, repr=False)

    def report_body(self) -> str:
        lines = [
            "Indirect effect = answer probability with one state restored minus with the "
            "subject noised. Rows: layers; columns: token roles (mean over prompts).",
            "",
        ]
        for lang, d in self.data["languages"].items():
            lines.append(
                f"- **{lang}**: {d['n_prompts']} prompts; clean p = {_num(d['clean_prob'])}, "
                f"noised p = {_num(d['corrupt_prob'])}; MLP effect at the last subject token "
                f"peaks at layer {d['mlp_peak_layer']} ({_num(d['mlp_last_subject_peak'])}), "
                f"at further tokens {_num(d['mlp_further_peak'])}"
            )
        return "\n".join(lines)

    def plots(self, out: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        paths = []
        for lang, d in self.data["languages"].items():
            fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
            for ax, kind in zip(axes, ("resid", "mlp", "attn")):
                grid = np.array(d["by_role"][kind], dtype=float)
                image = ax.imshow(grid, cmap="Purples", aspect="auto", origin="lower")
                ax.set_xticks(range(len(ROLES)), ROLES, rotation=45, ha="right", fontsize=7)
                ax.set_ylabel("layer")
                ax.set_title(f"{lang}: {kind}")
                fig.colorbar(image, ax=ax)
            fig.tight_layout()
            path = out / f"trace_{lang}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            paths.append(path)
        return paths


def run(model: Any, config: Config) -> Result:
    """Trace every language's known facts; one finding per language about the early site.

    Example:
        >>> import lens
        >>> from lens.studies import causal_tracing as ct
        >>> res = ct.run(lens.load_model("organism"), ct.quick_config())  # doctest: +SKIP
    """
    from lens.studies._organism_data import model_label

    n_layers = int(model.cfg.n_layers)
    window = config.window or max(1, round(n_layers / 5))
    data: dict[str, Any] = {"window": window, "languages": {}}
    findings = []
    for lang, facts in _facts(model, config).items():
        known = _known(model, facts, config.prompts_per_language)
        if not known:
            data["languages"][lang] = {"n_prompts": 0}
            findings.append(
                Finding(
                    f"[{lang}] early site (MLP, last subject token, middle layers)",
                    False,
                    "no prompt in this language is answered right: nothing to trace.",
                )
            )
            continue
        prompts = [p for p, _, _ in known]
        res = causal_trace(
            model, prompts, [s for _, s, _ in known], [a for _, _, a in known],
            window=window, noise=config.noise, samples=config.samples, seed=config.seed,
            batch_size=config.batch_size, progress=False,
        )  # fmt: skip
        by_role = {k: res.by_role(k) for k in ("resid", "mlp", "attn")}
        mlp_last = by_role["mlp"][:, LAST_SUBJECT]
        mlp_further = by_role["mlp"][:, FURTHER]
        peak = int(mlp_last.argmax())
        further_peak = (
            float(np.nanmax(mlp_further.numpy())) if mlp_further.isfinite().any() else None
        )  # None: the prompts have no token between the subject and the last one
        middle = n_layers / 6 <= peak < 2 * n_layers / 3
        early = bool(middle and float(mlp_last.max()) > max(further_peak or 0.0, 0.0))
        data["languages"][lang] = {
            "n_prompts": len(known),
            "prompts": prompts,
            "clean_prob": float(res.clean_prob.mean()),
            "corrupt_prob": float(res.corrupt_prob.mean()),
            "by_role": {k: v.tolist() for k, v in by_role.items()},
            "mlp_peak_layer": peak,
            "mlp_last_subject_peak": float(mlp_last.max()),
            "mlp_further_peak": further_peak,
        }
        findings.append(
            Finding(
                f"[{lang}] early site: restoring MLP outputs at the last subject token matters "
                "most in middle layers, more than at later subject-free tokens.",
                early,
                f"peak at layer {peak} of {n_layers} (effect {_num(float(mlp_last.max()))}, "
                f"further tokens {_num(further_peak)}; {len(known)} prompts).",
            )
        )
    return Result(config=config.to_dict(), model=model_label(model), data=data, findings=findings)


register_study("causal_tracing", sys.modules[__name__])
