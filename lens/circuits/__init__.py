"""Circuit discovery on edges: the residual graph, EAP / EAP-IG scores, edge patching,
faithfulness."""

from lens.circuits.attribute import attribute, writer_outputs
from lens.circuits.graph import Circuit, Graph

__all__ = ["Circuit", "Graph", "attribute", "writer_outputs"]
