"""Result of the circuit discovery study: headline, markdown report, plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lens.plots.common import markdown_table
from lens.studies.base import StudyResult
from lens.studies.base import fmt_number as _num
from lens.studies.circuit_discovery.data import CircuitData
from lens.studies.circuit_discovery.findings import SMALL, small_circuit


@dataclass
class Result(StudyResult):
    """Numbers of the circuit discovery study (:class:`CircuitData`)."""

    study: ClassVar[str] = "circuit_discovery"
    title: ClassVar[str] = "Circuit discovery on edges (EAP, EAP-IG)"
    Data: ClassVar[type[CircuitData]] = CircuitData
    data: CircuitData
    # the scored graphs of this run by method (not saved: results.json keeps the top edges)
    graphs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def html_views(self) -> list[Any]:
        """The default method's circuit with its size slider and faithfulness read-out."""
        from lens.circuits.faithfulness import FaithfulnessCurve
        from lens.html.circuit import circuit_view

        name = self.data.default_method
        if name not in self.graphs:
            return []
        curve = FaithfulnessCurve(**self.data.methods[name]["curve"])
        return [circuit_view(self.graphs[name], curve=curve, title=f"Circuit ({name})")]

    def headline(self) -> str:
        d = self.data
        parts = [f"{d.task} ({d.n_pairs} pairs, {d.n_edges} edges)"]
        for name, e in d.methods.items():
            best, size = small_circuit(d, name)
            parts.append(
                f"{name}: CPR {_num(e['curve']['cpr'], 3)}, CMD {_num(e['curve']['cmd'], 3)}, "
                f"faithfulness {_num(best)} with {size} edges"
            )
        return "; ".join(parts)

    def report_body(self) -> str:
        d = self.data
        rows = []
        for name, e in d.methods.items():
            best, size = small_circuit(d, name)
            rows.append([name, e["steps"], _num(e["seconds"], 1), _num(e["curve_seconds"], 1),
                         _num(e["curve"]["cpr"], 3), _num(e["curve"]["cmd"], 3), _num(best),
                         size])  # fmt: skip
        table = markdown_table(
            ["method", "steps", "scoring s", "curve s", "CPR", "CMD",
             f"best faithfulness (<= {SMALL:.0%} of edges)", "its edges"], rows,
        )  # fmt: skip
        heads = d.methods[d.default_method]["top_heads"]
        head_rows = [[h["head"], h["layer"], _num(h["out_score"], 3), _num(h["to_logits"], 3)]
                     for h in heads]  # fmt: skip
        c0 = d.methods[d.default_method]["curve"]
        gap = (
            f"Mean logit difference: {_num(c0.get('clean_metric'))} on the clean prompts, "
            f"{_num(c0.get('empty_metric'))} with every edge ablated (the empty circuit); "
            "faithfulness divides by this gap, so a small gap makes it swing far outside 0..1."
        )
        skipped = ", ".join(f"{k}: {v}" for k, v in d.skipped.items()) or "none"
        examples = "\n".join(f"- `{c}` / `{x}`" for c, x in d.pairs[:4])
        return "\n".join(
            [
                f"Pairs: {d.n_pairs} of the {d.n_records} `{d.task}` pairs ({d.language}) of "
                f"`{d.source}`; skipped: {skipped}. Examples (clean / corrupt):",
                "",
                examples,
                "",
                f"The graph: {d.n_layers} layers, {d.n_heads} heads ({d.n_kv} key/value heads) "
                f"per layer, {d.n_edges} edges from writers (input, heads, MLPs) to readers (each "
                "head's q/k/v input, MLP inputs, logits). Faithfulness = (m(C) - m(corrupt)) / "
                "(m(clean) - m(corrupt)) of the logit difference, every edge outside the circuit "
                f"carrying its {d.ablation} value. CPR: area under faithfulness over the fraction "
                "of edges kept (higher is better); CMD: area under |1 - faithfulness| (lower is "
                "better).",
                "",
                gap,
                "",
                table,
                "",
                f"Heads with the most outgoing |score| ({d.default_method}):",
                "",
                markdown_table(
                    ["head", "layer", "sum |score| out", "score into logits"], head_rows
                ),
                "",
                self.roles_text(),
            ]
        )

    def roles_text(self) -> str:
        """Where the heads of the default method's circuit sit, next to GPT-2's IOI circuit."""
        d = self.data
        r = d.methods[d.default_method].get("roles")
        if not r:
            return ""

        def names(items: list) -> str:
            return ", ".join(f"{h['head']} ({h['score']:+.3f})" for h in items) or "none"

        def depth(items: list) -> str:
            if not items:
                return "n/a"
            mean = sum(h["layer"] for h in items) / len(items)
            return (
                f"mean layer {mean:.1f} of {d.n_layers} ({mean / max(1, d.n_layers - 1):.0%} deep)"
            )

        lines = [
            f"Heads writing most straight into the logits: {names(r['logit_heads'])}; "
            f"{depth(r['logit_heads'])}.",
            "",
            f"Heads writing most into those heads' queries: {names(r['query_writers'])}; "
            f"{depth(r['query_writers'])}.",
        ]
        if d.task.startswith("ioi") and r["logit_heads"] and r["query_writers"]:
            deep = [sum(h["layer"] for h in r[k]) / len(r[k]) / max(1, d.n_layers - 1)
                    for k in ("logit_heads", "query_writers")]  # fmt: skip
            order = "the same order as" if deep[0] > deep[1] else "not the order of"
            lines += [
                "",
                "For comparison, GPT-2 small's IOI circuit (Wang et al. 2022; 12 layers): name "
                "movers, which copy the indirect object into the logits, in layers 9-10 (75-90% "
                "deep); S-inhibition heads, which write into the name movers' queries, in layers "
                f"7-8 (60-70%); induction and duplicate-token heads in layers 0-6. Here the "
                f"logit-writing heads sit {deep[0]:.0%} deep and the heads writing into their "
                f"queries {deep[1]:.0%} deep: {order} GPT-2's. The roles are named by position "
                "in the graph only, not checked by each head's attention pattern.",
            ]
        return "\n".join(lines)

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.circuit_discovery.plots import plot_circuit, plot_curves

        d = self.data
        curves = {name: e["curve"] for name, e in d.methods.items()}
        edges = d.methods[d.default_method]["circuit_edges"]
        title = f"{d.task}: top {len(edges)} edges ({d.default_method})"
        return [
            plot_curves(curves, d.n_edges, out / "faithfulness.png"),
            plot_circuit(edges, out / "circuit.png", n_heads=d.n_heads, n_kv=d.n_kv, title=title),
        ]
