"""The circuit-discovery claims (Hanna et al. 2024; Wang et al. 2022 for IOI), checked on this
model's numbers."""

from __future__ import annotations

from lens.studies.base import Finding
from lens.studies.base import fmt_number as _num
from lens.studies.circuit_discovery.data import CircuitData

SMALL = 0.05  # a "small" circuit: at most this fraction of the edges


def small_circuit(data: CircuitData, method: str) -> tuple[float, int]:
    """The best faithfulness of ``method``'s circuits with at most ``SMALL`` of the edges, and
    that circuit's edge count."""
    c = data.methods[method]["curve"]
    best, size = float("-inf"), 0
    for n, f in zip(c["n_edges"], c["faithfulness"]):
        if 0 < n <= SMALL * data.n_edges and f > best:
            best, size = f, n
    return best, size


def logit_writer(data: CircuitData, method: str) -> dict | None:
    """Among the top heads, the one writing most (``|score|``) straight into the logits."""
    heads = data.methods[method]["top_heads"]
    return max(heads, key=lambda h: abs(h["to_logits"])) if heads else None


def findings(data: CircuitData) -> list[Finding]:
    out = []
    m = data.default_method
    if "eap" in data.methods and "eap-ig" in data.methods:
        a, b = data.methods["eap"]["curve"]["cpr"], data.methods["eap-ig"]["curve"]["cpr"]
        out.append(
            Finding(
                "EAP-IG's circuits are more faithful than EAP's over circuit sizes (higher CPR, "
                "Hanna et al. 2024).",
                b > a,
                f"CPR {_num(b, 3)} (EAP-IG) vs {_num(a, 3)} (EAP); {data.n_pairs} pairs.",
            )
        )
    best, size = small_circuit(data, m)
    out.append(
        Finding(
            f"A small circuit (at most {SMALL:.0%} of the edges) found by {m} recovers at least "
            "half of the clean-corrupt metric gap.",
            best >= 0.5,
            f"best faithfulness {_num(best)} with {size} of {data.n_edges} edges.",
        )
    )
    head = logit_writer(data, m)
    if data.task == "ioi" and head is not None:
        late = head["layer"] >= data.n_layers / 2
        out.append(
            Finding(
                "The head writing most into the logits sits in the later half of the model "
                "(name-mover heads are late in GPT-2's IOI circuit, Wang et al. 2022).",
                late,
                f"{head['head']} (layer {head['layer']} of {data.n_layers}; edge to logits "
                f"{_num(head['to_logits'], 3)}).",
            )
        )
    return out
