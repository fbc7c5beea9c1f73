"""Positive controls: a study's findings scored against the truth planted in the model
(``World.truth`` of ``lens.load_model("organism-planted")``; :mod:`lens.organism.planted`).

Every study that can be scored calls :func:`planted_truth` and, when the model has truth for
it, stores a ``recovery`` dict in its data (``None`` otherwise); :func:`recovery_line` turns it
into the headline's "recovered planted X (precision p, recall r)" or "missed planted X".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MIN_SCORE = 0.9  # precision, recall and cosine at least this count as recovered
MIN_GAIN = 0.05  # an intervention "raises" a score when it adds at least this much


def planted_truth(model: Any, key: str) -> dict[str, Any] | None:
    """The planted truth ``key`` of the model's world, or None (not an organism, or nothing
    planted for ``key``).

    Example:
        >>> import lens
        >>> planted_truth(lens.load_model("organism"), "refusal") is None
        True
    """
    from lens.studies._organism_data import organism_world

    world = organism_world(model, required=False)
    truth = getattr(world, "truth", None) or {}
    return truth.get(key)


def neuron_recovery(
    found: Mapping[str, Sequence[Sequence[int]]],
    planted: Mapping[str, Sequence[Sequence[int]]],
    what: str,
) -> dict[str, Any]:
    """Precision and recall of found ``{group: [[layer, neuron], ...]}`` against planted ones,
    pooled over (group, layer, neuron) triples of the groups both know, and per group.

    Example:
        >>> r = neuron_recovery({"a": [[0, 1], [0, 2]]}, {"a": [[0, 1]]}, "x neurons")
        >>> r["precision"], r["recall"]
        (0.5, 1.0)
    """
    groups = [g for g in planted if g in found]
    per: dict[str, dict[str, float | None]] = {}
    hits = n_found = n_planted = 0
    for g in groups:
        f = {tuple(map(int, x)) for x in found[g]}
        p = {tuple(map(int, x)) for x in planted[g]}
        h = len(f & p)
        per[g] = {
            "precision": h / len(f) if f else None,
            "recall": h / len(p) if p else None,
        }
        hits, n_found, n_planted = hits + h, n_found + len(f), n_planted + len(p)
    precision = hits / n_found if n_found else 0.0
    recall = hits / n_planted if n_planted else 0.0
    return {
        "what": what,
        "kind": "neurons",
        "precision": precision,
        "recall": recall,
        "n_found": n_found,
        "n_planted": n_planted,
        "per_group": per,
        "recovered": precision >= MIN_SCORE and recall >= MIN_SCORE,
    }


def direction_recovery(
    found: Mapping[str, Sequence[float]],
    planted: Mapping[str, Sequence[float]],
    what: str,
    **extra: Any,
) -> dict[str, Any]:
    """Cosine of each found direction with the planted one of the same group (restricted to
    the planted model's residual width); recovered when the smallest is at least 0.9.

    Example:
        >>> r = direction_recovery({"a": [1.0, 1.0]}, {"a": [1.0, 0.0]}, "d")
        >>> round(r["min_cosine"], 3), r["recovered"]
        (0.707, False)
    """
    cos: dict[str, float] = {}
    for g, p in planted.items():
        if g not in found:
            continue
        a, b = np.asarray(found[g], dtype=float), np.asarray(p, dtype=float)
        cos[g] = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    low = min(cos.values()) if cos else 0.0
    return {
        "what": what,
        "kind": "direction",
        "cosine": cos,
        "min_cosine": low,
        "recovered": bool(cos) and low >= MIN_SCORE and all(extra.get("checks", {}).values()),
        **extra,
    }


def layer_recovery(
    found: Mapping[str, int | Sequence[int]],
    planted_layer: int | Sequence[int],
    what: str,
    *,
    planted: bool = True,
    checks: Mapping[str, bool] | None = None,
) -> dict[str, Any]:
    """The layer (or band of layers) a study located per group (``{group: layer}``) against
    the planted one: recovered when every group's equals it. ``planted=False`` (a negative
    control: the model has no such effect) is recovered when no group's touches it;
    ``checks`` are further named conditions that must all hold.

    Example:
        >>> r = layer_recovery({"en": 2}, 2, "fact pathway")
        >>> r["recovered"], recovery_line(r)
        (True, 'recovered planted fact pathway (layer en 2 vs planted 2)')
        >>> layer_recovery({"a": [2, 3]}, [2, 3, 4], "pivot")["recovered"]
        False
    """

    def layers(x: int | Sequence[int]) -> set[int]:
        return {int(x)} if isinstance(x, int) else {int(v) for v in x}

    want = layers(planted_layer)
    if planted:
        located = bool(found) and all(layers(v) == want for v in found.values())
    else:
        located = bool(found) and not any(layers(v) & want for v in found.values())
    checks = dict(checks or {})
    return {
        "what": what,
        "kind": "layer",
        "planted": planted,
        "planted_layer": planted_layer if isinstance(planted_layer, int) else list(want),
        "found": {g: v if isinstance(v, int) else sorted(layers(v)) for g, v in found.items()},
        "checks": checks,
        "recovered": located and all(checks.values()),
    }


def effect_recovery(
    before: Mapping[str, float | None],
    after: Mapping[str, float | None],
    what: str,
    *,
    planted: bool = True,
    how: str = "",
) -> dict[str, Any]:
    """Scores without (``before``) and with (``after``) an intervention, vs a planted effect
    that the intervention should raise every score by at least ``MIN_GAIN``. ``planted=False``
    (a negative control) is recovered when it does not raise them all; ``how`` names the
    intervention in the headline.

    Example:
        >>> r = effect_recovery({"recall": 0.6}, {"recall": 0.9}, "late path")
        >>> r["recovered"], recovery_line(r)
        (True, 'recovered planted late path (recall 0.60→0.90)')
        >>> effect_recovery({"recall": 0.9}, {"recall": 0.9}, "x", planted=False)["recovered"]
        True
    """
    gains = {
        k: None if b is None or (a := after.get(k)) is None else a - b for k, b in before.items()
    }
    raised = bool(gains) and all(g is not None and g >= MIN_GAIN for g in gains.values())
    return {
        "what": what,
        "kind": "effect",
        "planted": planted,
        "before": dict(before),
        "after": {k: after.get(k) for k in before},
        "gains": gains,
        "raised": raised,
        "how": how,
        "recovered": raised if planted else not raised,
    }


def recovery_line(recovery: Mapping[str, Any] | None) -> str:
    """The headline's words for a recovery dict ("" for None).

    Example:
        >>> recovery_line({"what": "x", "kind": "neurons", "precision": 1.0, "recall": 0.5,
        ...                "recovered": False})
        'missed planted x (precision 1.00, recall 0.50)'
    """
    if not recovery:
        return ""
    word = "recovered" if recovery["recovered"] else "missed"
    if recovery["kind"] == "neurons":
        score = f"precision {recovery['precision']:.2f}, recall {recovery['recall']:.2f}"
    elif recovery["kind"] == "effect":
        score = ", ".join(
            f"{k} {_fmt(b)}→{_fmt(recovery['after'][k])}" for k, b in recovery["before"].items()
        ) + (f", {recovery['how']}" if recovery.get("how") else "")
        if not recovery["planted"]:
            rise = "rises" if recovery["raised"] else "no rise"
            return f"{word} the absence of planted {recovery['what']} ({score}: {rise})"
    elif recovery["kind"] == "layer":
        found = ", ".join(f"{g} {v}" for g, v in recovery["found"].items()) or "none"
        score = f"layer {found} vs planted {recovery['planted_layer']}"
        if not recovery["planted"]:
            score = f"{found} vs layer {recovery['planted_layer']}, where nothing is planted"
            return f"{word} the absence of planted {recovery['what']} ({score}{_checks(recovery)})"
        score += _checks(recovery)
    else:
        score = f"min cosine {recovery['min_cosine']:.2f}"
        score += _checks(recovery)
    return f"{word} planted {recovery['what']} ({score})"


def _checks(recovery: Mapping[str, Any]) -> str:
    checks = recovery.get("checks", {})
    return "".join(f", {k} {'yes' if v else 'NO'}" for k, v in checks.items())


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"
