"""Circuit discovery on edges: the residual graph, EAP / EAP-IG scores, edge patching,
faithfulness."""

from lens.circuits.attribute import attribute, writer_outputs
from lens.circuits.faithfulness import FaithfulnessCurve, faithfulness, faithfulness_curve
from lens.circuits.graph import Circuit, Graph
from lens.circuits.interop import from_transformer_lens, to_transformer_lens

__all__ = [
    "Circuit",
    "FaithfulnessCurve",
    "Graph",
    "attribute",
    "faithfulness",
    "faithfulness_curve",
    "from_transformer_lens",
    "to_transformer_lens",
    "writer_outputs",
]
