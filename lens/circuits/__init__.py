"""Circuit discovery on edges: the residual graph, EAP / EAP-IG scores, edge patching,
faithfulness."""

from lens.circuits.attribute import attribute
from lens.circuits.faithfulness import (
    FaithfulnessCurve,
    faithfulness,
    faithfulness_curve,
    mean_writer_outputs,
)
from lens.circuits.graph import Circuit, Graph
from lens.circuits.metrics import METRICS
from lens.circuits.planted import INDUCTION_EDGES, edge_auroc, induction_model, induction_pairs
from lens.circuits.plot import plot_circuit
from lens.circuits.runs import writer_outputs
from lens.circuits.trained import LOOKUP_EDGES, lookup_model, lookup_pairs
from lens.circuits.truth import auroc_table, edge_drops, find_circuit

__all__ = [
    "Circuit",
    "FaithfulnessCurve",
    "INDUCTION_EDGES",
    "LOOKUP_EDGES",
    "METRICS",
    "Graph",
    "attribute",
    "auroc_table",
    "edge_auroc",
    "edge_drops",
    "faithfulness",
    "faithfulness_curve",
    "find_circuit",
    "induction_model",
    "induction_pairs",
    "lookup_model",
    "lookup_pairs",
    "mean_writer_outputs",
    "plot_circuit",
    "writer_outputs",
]
