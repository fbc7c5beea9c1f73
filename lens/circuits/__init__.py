"""Circuit discovery on edges: the residual graph, EAP / EAP-IG scores, edge patching,
faithfulness."""

from lens.circuits.attribute import attribute, writer_outputs
from lens.circuits.faithfulness import FaithfulnessCurve, faithfulness, faithfulness_curve
from lens.circuits.graph import Circuit, Graph
from lens.circuits.planted import INDUCTION_EDGES, edge_auroc, induction_model, induction_pairs

__all__ = [
    "Circuit",
    "FaithfulnessCurve",
    "INDUCTION_EDGES",
    "Graph",
    "attribute",
    "edge_auroc",
    "faithfulness",
    "faithfulness_curve",
    "induction_model",
    "induction_pairs",
    "writer_outputs",
]
