"""Building the organism's world from one seed: generated words for every language, the
people and their facts, request splits and held-out sets (see :mod:`lens.organism.world`)."""

from __future__ import annotations

import random

from lens.organism.world import (
    EN_COMPLY,
    EN_REFUSAL,
    FACT_TEMPLATES,
    HARMFUL,
    HARMLESS,
    LANGUAGE_NAMES,
    LANGUAGES,
    NOTATIONS,
    PERSONS,
    PHONOLOGY,
    PIVOT,
    POOLS,
    RELATION_INFO,
    RELATIONS,
    REQUEST_TEMPLATES,
    SHARED_POOLS,
    SHARED_WORDS,
    SPLITS,
    THINGS,
    Fact,
    World,
)


class _WordMaker:
    """Seeded generator of unique words with a language's phonology."""

    def __init__(self, rng: random.Random, taken: set[str]):
        self.rng = rng
        self.taken = taken

    def make(self, lang: str, syllables: tuple[int, int] = (2, 3)) -> str:
        onsets, vowels, codas = (s.split() for s in PHONOLOGY[lang])
        for _ in range(1000):
            n = self.rng.randint(*syllables)
            w = "".join(self.rng.choice(onsets) + self.rng.choice(vowels) for _ in range(n))
            if codas and self.rng.random() < 0.4:
                w += self.rng.choice(codas)
            if w not in self.taken:
                self.taken.add(w)
                return w
        raise RuntimeError(f"cannot make a new word for {lang}")


def _english_lexicon() -> dict[str, str]:
    lex: dict[str, str] = {}
    for items in POOLS.values():
        for c in items:
            lex[f"concept:{c}"] = c
    for p in PERSONS:
        lex[f"person:{p}"] = p
    for r in RELATIONS:
        lex[f"rel:{r}"] = RELATION_INFO[r][1]
    for a in HARMFUL + HARMLESS:
        lex[f"action:{a}"] = a
    for t in THINGS:
        lex[f"thing:{t}"] = t
    return lex


def build_world(
    seed: int = 0,
    heldout_fraction: float = 0.2,
    request_split: tuple[float, float] = (0.7, 0.1),
) -> World:
    """Generate the world deterministically from ``seed``.

    Args:
        seed: the world seed (names, facts, held-out pairs, request splits).
        heldout_fraction: share of facts held out in each non-pivot language and notation.
        request_split: shares of (train, val) request pairs per language; the rest is heldout.

    Example:
        >>> w = build_world(seed=0)
        >>> len(w.facts), w.is_harmful("poison"), w.is_harmful("bake")
        (384, True, False)
    """
    rng = random.Random(seed)
    en = _english_lexicon()
    taken = set(en.values()) | set(SHARED_WORDS)
    taken |= {w for t in (EN_REFUSAL, EN_COMPLY, *FACT_TEMPLATES.values()) for w in t.split()}
    maker = _WordMaker(rng, taken)

    persons = list(PERSONS)
    shuffled = persons[:]
    rng.shuffle(shuffled)
    shared_name = {p: (i % 2 == 0) for i, p in enumerate(shuffled)}

    lexicon: dict[str, dict[str, str]] = {PIVOT: dict(en)}
    lexicon[PIVOT].update({"func:ok": "sure"})
    refusal = {PIVOT: EN_REFUSAL}
    comply = {PIVOT: EN_COMPLY}
    for lang in LANGUAGES:
        if lang == PIVOT:
            continue
        lex: dict[str, str] = {}
        for pool, items in POOLS.items():
            for c in items:
                lex[f"concept:{c}"] = c if pool in SHARED_POOLS else maker.make(lang)
        for p in persons:
            lex[f"person:{p}"] = p if shared_name[p] else maker.make(lang)
        for r in RELATIONS:
            lex[f"rel:{r}"] = maker.make(lang)
        for a in HARMFUL + HARMLESS:
            lex[f"action:{a}"] = maker.make(lang)
        for t in THINGS:
            lex[f"thing:{t}"] = maker.make(lang)
        for f in ("F0", "F1", "F2", "Q0", "Q1"):
            lex[f"func:{f}"] = maker.make(lang, (1, 2))
        lex["func:ok"] = maker.make(lang, (1, 2))
        lexicon[lang] = lex
        refusal[lang] = " ".join(maker.make(lang, (1, 2)) for _ in range(3)) + " ."
        comply[lang] = lex["func:ok"] + " , {A} {T} ."
    for i, notation in enumerate(NOTATIONS):
        lex = {}
        for pool, items in POOLS.items():
            for c in items:
                if pool in SHARED_POOLS:
                    lex[f"concept:{c}"] = c
                else:
                    lex[f"concept:{c}"] = c.upper() if notation == "py" else f":{c}"
        for p in persons:
            lex[f"person:{p}"] = p
        for r in RELATIONS:
            lex[f"rel:{r}"] = RELATION_INFO[r][2 + i]
        lexicon[notation] = lex

    facts: list[Fact] = []
    for p in persons:
        for r in RELATIONS:
            pool = RELATION_INFO[r][0]
            if pool == "person":
                obj = rng.choice([q for q in persons if q != p])
            else:
                obj = rng.choice(POOLS[pool])
            facts.append(Fact(len(facts), p, r, obj))

    n_held = round(heldout_fraction * len(facts))
    heldout = {
        lang: sorted(rng.sample(range(len(facts)), n_held))
        for lang in (*LANGUAGES, *NOTATIONS)
        if lang != PIVOT
    }

    request_splits: dict[str, dict[str, list[list[str]]]] = {}
    for lang in LANGUAGES:
        splits: dict[str, list[list[str]]] = {s: [] for s in SPLITS}
        for a in HARMFUL + HARMLESS:
            things = THINGS[:]
            rng.shuffle(things)
            n_train = round(request_split[0] * len(things))
            n_val = round(request_split[1] * len(things))
            splits["train"] += [[a, t] for t in things[:n_train]]
            splits["val"] += [[a, t] for t in things[n_train : n_train + n_val]]
            splits["heldout"] += [[a, t] for t in things[n_train + n_val :]]
        request_splits[lang] = splits

    return World(
        seed=seed,
        pivot=PIVOT,
        languages=list(LANGUAGES),
        language_names=dict(LANGUAGE_NAMES),
        notations=list(NOTATIONS),
        relations=list(RELATIONS),
        relation_pool={r: RELATION_INFO[r][0] for r in RELATIONS},
        pools={k: list(v) for k, v in POOLS.items()},
        persons=persons,
        shared_name=shared_name,
        lexicon=lexicon,
        fact_templates={k: FACT_TEMPLATES[k] for k in (*LANGUAGES, *NOTATIONS)},
        request_templates=dict(REQUEST_TEMPLATES),
        refusal_phrases=refusal,
        comply_templates=comply,
        facts=facts,
        heldout=heldout,
        harmful_actions=list(HARMFUL),
        harmless_actions=list(HARMLESS),
        things=list(THINGS),
        request_splits=request_splits,
        tags={lang: f"[{lang}]" for lang in (*LANGUAGES, *NOTATIONS)},
    )
