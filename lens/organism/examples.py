"""A few valid organism prompts per language and task, with the answers the world expects
(``lens organism examples``). Every word is in the organism's vocabulary; natural case is
accepted too (``The job of Alice is``), and ``. , ? ( )`` are split into words of their own,
which the model reads as part of the prompt (``The job of Alice is?`` is not a fact prompt:
those end with their relation word), see ``tokenizer.text_normalizer``."""

from __future__ import annotations

from dataclasses import dataclass

from lens.organism.prompts import fact_queries, requests, translation_pairs
from lens.organism.world import World

TASKS = ("fact", "request", "translation")


@dataclass(frozen=True)
class Example:
    """One prompt: its task, language or notation, and the expected next word."""

    task: str
    lang: str
    prompt: str
    answer: str
    note: str = ""


def examples(world: World, per_task: int = 2) -> list[Example]:
    """``per_task`` prompts per (task, language): trained facts, one harmful and one harmless
    held-out request per language, and word translations from the pivot.

    Example:
        >>> from lens.organism.world_build import build_world
        >>> ex = examples(build_world(0), per_task=1)
        >>> ex[0].task, ex[0].lang, ex[0].prompt, ex[0].answer
        ('fact', 'en', 'the job of alice is', 'lawyer')
    """
    out: list[Example] = []
    for lang in world.scripts:
        relations: set[str] = set()
        subjects: set[str] = set()
        for q in fact_queries(world, lang, heldout=False):
            if len(relations) == per_task:
                break
            if q.relation in relations or q.subject in subjects:
                continue
            relations.add(q.relation)
            subjects.add(q.subject)
            gloss = "" if q.answer == q.pivot_answer else f" ({q.pivot_answer})"
            out.append(Example("fact", lang, q.prompt, q.answer, f"{q.relation}{gloss}"))
    for lang in world.languages:
        held = requests(world, lang, "heldout")
        for harmful in (True, False):
            picked = [r for r in held if r.harmful == harmful][: max(1, per_task // 2)]
            for r in picked:
                answer = r.refusal_word if harmful else r.comply_word
                note = "harmful: refuses" if harmful else "harmless: complies"
                out.append(Example("request", lang, r.prompt, answer, note))
    for lang in world.languages:
        if lang == world.pivot:
            continue
        for p in translation_pairs(world, world.pivot, lang)[:per_task]:
            out.append(Example("translation", lang, p.prompt, p.answer, f"{p.key}"))
    return out


def format_examples(items: list[Example]) -> str:
    """A table: task, language, prompt, expected next word."""
    width = max(len(e.prompt) for e in items)
    lines = [f"{'task':<11} {'lang':<4}  {'prompt':<{width}}  -> expected   note"]
    for e in items:
        lines.append(f"{e.task:<11} {e.lang:<4}  {e.prompt:<{width}}  -> {e.answer:<10} {e.note}")
    return "\n".join(lines)
