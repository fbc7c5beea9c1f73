"""Training documents for the organism, sampled on the fly from the world.

Document kinds (share of documents; the pivot gets the largest share of fact text):

* ``facts``: fact sentences of one language or notation (half "biographies" of one person,
  half random facts), never a held-out (fact, language) pair.
* ``mixed``: a code-switching biography: facts of one person, each sentence in a random
  language or notation (trained pairs only).
* ``parallel``: the same fact in two languages/notations, tagged: ``[en] the job of alice is
  doctor . [ka] ...`` (only pairs that are in training in both).
* ``dictionary``: word translations of one language pair, few-shot style:
  ``[ka] hikoso [en] mouse [ka] ... [en] ...``.
* ``chat``: requests of the train split with their responses (refusal phrase or compliance).

Every document is ``<s> ... </s>``, at most ``max_len`` tokens. The mix is a ``DataMix``; its
defaults are the module constants, i.e. the shipped model's data (same documents, same order).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from lens.organism.world import World

KIND_WEIGHTS = {"facts": 0.56, "mixed": 0.12, "parallel": 0.10, "dictionary": 0.08, "chat": 0.14}
PIVOT_FACT_SHARE = 0.24  # of fact documents; the other languages 0.11 each, notations 0.10
CHAT_PIVOT_SHARE = 0.3  # of chat documents; the other languages share the rest equally


@dataclass(frozen=True)
class DataMix:
    """What the sampler draws; the defaults reproduce the shipped model's documents exactly.

    * ``kind_weights``: relative weight of each document kind (``KIND_WEIGHTS`` keys).
    * ``pivot_fact_share``: share of ``facts`` documents written in the pivot; the rest is split
      0.11 : 0.10 between each other language and each notation.
    * ``parallel_pivot_share``: ``None`` = both sides of a ``parallel`` document are random
      scripts; a number p = with probability p one side is the pivot (translation data).
    * ``chat_pivot_share``: share of ``chat`` documents in the pivot; the rest is split equally.
    * ``refusal_examples_per_language``: ``None`` = every train-split request in every language;
      k = in each non-pivot language only k harmful train requests (distinct actions, fixed per
      language) stay in the chat data, with all harmless ones, so refusal in those languages has
      to transfer from the pivot instead of being taught.
    """

    kind_weights: tuple[tuple[str, float], ...] = tuple(KIND_WEIGHTS.items())
    pivot_fact_share: float = PIVOT_FACT_SHARE
    parallel_pivot_share: float | None = None
    chat_pivot_share: float = CHAT_PIVOT_SHARE
    refusal_examples_per_language: int | None = None

    def __post_init__(self) -> None:
        unknown = {k for k, _ in self.kind_weights} - set(KIND_WEIGHTS)
        if unknown:
            raise ValueError(
                f"unknown document kinds {sorted(unknown)}; known: {list(KIND_WEIGHTS)}"
            )
        if any(v < 0 for _, v in self.kind_weights) or sum(v for _, v in self.kind_weights) <= 0:
            raise ValueError(f"kind_weights must be >= 0 with a positive sum: {self.kind_weights}")
        for name in ("pivot_fact_share", "parallel_pivot_share", "chat_pivot_share"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {v}")
        k = self.refusal_examples_per_language
        if k is not None and k < 0:
            raise ValueError(f"refusal_examples_per_language must be >= 0, got {k}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind_weights": dict(self.kind_weights),
            "pivot_fact_share": self.pivot_fact_share,
            "parallel_pivot_share": self.parallel_pivot_share,
            "chat_pivot_share": self.chat_pivot_share,
            "refusal_examples_per_language": self.refusal_examples_per_language,
        }


@dataclass
class DocumentSampler:
    """Seeded sampler of training documents (lists of words, without BOS/EOS).

    Example:
        >>> from lens.organism.world_build import build_world
        >>> s = DocumentSampler(build_world(0), seed=0)
        >>> words = s.sample()
        >>> 0 < len(words) <= s.max_len - 2
        True
    """

    world: World
    seed: int = 0
    max_len: int = 48
    mix: DataMix = field(default_factory=DataMix)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        w = self.world
        self.budget = self.max_len - 2
        self.train_facts = {
            s: [i for i in range(len(w.facts)) if not w.is_heldout(i, s)] for s in w.scripts
        }
        self.sentences = {
            s: {i: w.fact_sentence(i, s)[2].split() for i in self.train_facts[s]} for s in w.scripts
        }
        self.by_person: dict[str, dict[str, list[int]]] = {}
        for s in w.scripts:
            per: dict[str, list[int]] = {}
            for i in self.train_facts[s]:
                per.setdefault(w.facts[i].subject, []).append(i)
            self.by_person[s] = per
        others = [s for s in w.scripts if s != w.pivot]
        n_lang = len(w.languages) - 1
        mix = self.mix
        rest = 1.0 - mix.pivot_fact_share
        lang_share = rest * 0.11 / (0.11 * n_lang + 0.10 * len(w.notations))
        note_share = rest * 0.10 / (0.11 * n_lang + 0.10 * len(w.notations))
        self.fact_scripts = [w.pivot, *others]
        self.fact_weights = [mix.pivot_fact_share] + [
            lang_share if s in w.languages else note_share for s in others
        ]
        p = mix.chat_pivot_share
        self.chat_weights = [p if lang == w.pivot else (1 - p) / n_lang for lang in w.languages]
        self.chat_pairs = {lang: self._chat_pairs(lang) for lang in w.languages}

    def _chat_pairs(self, lang: str) -> list[list[str]]:
        w = self.world
        pairs = w.request_splits[lang]["train"]
        k = self.mix.refusal_examples_per_language
        if k is None or lang == w.pivot:
            return pairs
        harmful = [p for p in pairs if w.is_harmful(p[0])]
        pick = random.Random(f"refusal-examples-{lang}")  # fixed per language, not per run seed
        pick.shuffle(harmful)
        kept: list[list[str]] = []
        for p in harmful:  # one per action first, so the k examples cover k harmful actions
            if len(kept) < k and p[0] not in {q[0] for q in kept}:
                kept.append(p)
        kept += [p for p in harmful if p not in kept][: k - len(kept)]
        return [p for p in pairs if not w.is_harmful(p[0]) or p in kept]

    def sample(self) -> list[str]:
        kinds, weights = zip(*self.mix.kind_weights)
        kind = self.rng.choices(kinds, weights)[0]
        return getattr(self, f"_{kind}")()

    def _pack(self, pieces: list[list[str]]) -> list[str]:
        out: list[str] = []
        for p in pieces:
            if len(out) + len(p) > self.budget:
                break
            out += p
        return out

    def _facts(self) -> list[str]:
        s = self.rng.choices(self.fact_scripts, self.fact_weights)[0]
        if self.rng.random() < 0.5:
            person = self.rng.choice(list(self.by_person[s]))
            idx = self.by_person[s][person][:]
            self.rng.shuffle(idx)
        else:
            idx = self.rng.sample(self.train_facts[s], 12)
        return self._pack([self.sentences[s][i] for i in idx])

    def _mixed(self) -> list[str]:
        w = self.world
        person = self.rng.choice(w.persons)
        pieces = []
        for r in self.rng.sample(w.relations, len(w.relations)):
            i = w.persons.index(person) * len(w.relations) + w.relations.index(r)
            scripts = [s for s in w.scripts if i in self.sentences[s]]
            pieces.append(self.sentences[self.rng.choice(scripts)][i])
        return self._pack(pieces)

    def _parallel(self) -> list[str]:
        w = self.world
        pieces: list[list[str]] = []
        share = self.mix.parallel_pivot_share
        if share is not None and self.rng.random() < share:
            other = self.rng.choice([s for s in w.scripts if s != w.pivot])
            s1, s2 = (w.pivot, other) if self.rng.random() < 0.5 else (other, w.pivot)
        else:
            s1, s2 = self.rng.sample(w.scripts, 2)
        common = sorted(set(self.sentences[s1]) & set(self.sentences[s2]))
        for i in self.rng.sample(common, 4):
            pieces.append([w.tags[s1], *self.sentences[s1][i], w.tags[s2], *self.sentences[s2][i]])
        return self._pack(pieces)

    def _dictionary(self) -> list[str]:
        w = self.world
        s1, s2 = self.rng.sample(w.scripts, 2)
        keys = sorted(set(w.lexicon[s1]) & set(w.lexicon[s2]))
        keys = [k for k in keys if not k.startswith("func:")]
        pieces = [
            [w.tags[s1], w.lexicon[s1][k], w.tags[s2], w.lexicon[s2][k]]
            for k in self.rng.sample(keys, 12)
        ]
        return self._pack(pieces)

    def _chat(self) -> list[str]:
        w = self.world
        lang = self.rng.choices(w.languages, self.chat_weights)[0]
        pairs = self.chat_pairs[lang]
        pieces = []
        for action, thing in self.rng.sample(pairs, 3):
            text = (
                w.request_prompt(lang, action, thing)
                + " "
                + w.request_response(lang, action, thing)
            )
            pieces.append(text.split())
        return self._pack(pieces)
