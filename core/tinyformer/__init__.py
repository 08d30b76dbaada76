"""TinyFormer: search space, graph IR, memory planner, sparse format, supernet, SuperNAS, SparseNAS.

Light imports only (no torch at package import): `graph_of`, `plan`, the sparse codec and the
search space. Torch-backed pieces live in `model`, `supernet`, `prune`, `sparsenas`, `data`.
"""

from core.tinyformer.graph import OP_KINDS, Graph, Op, TensorSpec, graph_of
from core.tinyformer.memory import Plan, default_scratch, peak_sram, plan
from core.tinyformer.space import SpaceConfig, sample, validate_arch

__all__ = ["OP_KINDS", "Graph", "Op", "Plan", "SpaceConfig", "TensorSpec", "default_scratch", "graph_of",
           "peak_sram", "plan", "sample", "validate_arch"]
