"""Result of the circuit discovery study: headline, markdown report, plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

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
            ]
        )

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
